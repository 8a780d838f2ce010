"""Table rows set aside on disk: read back as they went in, in an unnamed file."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import numpy as np

from asyncpipe.io.block_spool import BlockSpool
from asyncpipe.io.tables import EmbeddingRows


def _block(theme: str, rows: int, seed: int) -> EmbeddingRows:
    vectors = np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)
    return EmbeddingRows(
        themes=[theme] * rows,
        words=[f"{theme}{n}" for n in range(rows)],
        word_types=["candidate"] * rows,
        similarities=[n / rows for n in range(rows)],
        ranks=list(range(rows)),
        vectors=vectors,
    )


def test_blocks_come_back_in_order_as_often_as_asked(tmp_path: Path) -> None:
    blocks = [_block(f"t{n}", rows=n + 1, seed=n) for n in range(5)]
    with closing(BlockSpool(tmp_path)) as spool:
        for block in blocks[:3]:
            spool.append(block)
        first = list(spool)
        for block in blocks[3:]:
            spool.append(block)  # appending after a read goes on at the end
        again = list(spool)
        assert (spool.blocks, spool.rows) == (5, 15)

    assert [b.words for b in first] == [b.words for b in blocks[:3]]
    assert [b.words for b in again] == [b.words for b in blocks]
    for read, written in zip(again, blocks, strict=True):
        assert read.vectors.dtype == np.float32
        np.testing.assert_array_equal(read.vectors, written.vectors)
        assert read.similarities == written.similarities


def test_the_spool_has_no_name_in_its_folder_and_is_gone_when_closed(tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    spool = BlockSpool(folder)  # the folder is made if missing
    spool.append(_block("t", rows=100, seed=1))

    assert os.listdir(folder) == []  # nothing to clean up, whatever happens next
    descriptor = spool._file.fileno()
    assert os.fstat(descriptor).st_size > 100 * 8 * 4
    assert os.stat(f"/proc/self/fd/{descriptor}").st_dev == os.stat(folder).st_dev
    spool.close()
    assert spool._file.closed
