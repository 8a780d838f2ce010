"""Blocks of an embedding table set aside on disk until the table is written.

A batch is made in windows of puzzles (`asyncpipe.stages.windows`), and each
window's vectors are let go once its puzzles are made; the tables are written
at the end of the batch, so that a failure or a signal before then leaves the
previous tables whole. In between, the rows of the tables wait here: pickled,
one block after another, in an unnamed file beside the table they are for.
Memory holds one block at a time, whatever the size of the batch.

The file has no name: it is gone when the spool is closed, or when the process
dies, and never left for anyone to clean up. It sits in the table's folder, not
in the temporary folder, which may be memory (tmpfs).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from asyncpipe.io.tables import EmbeddingRows


class BlockSpool:
    """Append `EmbeddingRows` blocks, then read them back once or more, in order; `close`
    (or `contextlib.closing`) drops the file."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Kept open for the spool's life, closed by `close`: no `with` can hold it.
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder, prefix=".spool-")  # noqa: SIM115
        self._blocks = 0
        self._rows = 0

    @property
    def blocks(self) -> int:
        return self._blocks

    @property
    def rows(self) -> int:
        return self._rows

    def append(self, block: EmbeddingRows) -> None:
        self._file.seek(0, 2)
        pickle.dump(block, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._blocks += 1
        self._rows += len(block.themes)

    def __iter__(self) -> Iterator[EmbeddingRows]:
        """The blocks in the order they were appended (no append while reading)."""
        self._file.flush()
        position = 0
        for _ in range(self._blocks):
            self._file.seek(position)
            block = pickle.load(self._file)
            position = self._file.tell()
            yield block

    def close(self) -> None:
        self._file.close()
