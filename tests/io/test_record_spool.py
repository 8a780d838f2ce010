"""RecordSpool: the batch's theme records on disk, read back as the dict they were."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.io.record_spool import RecordSpool
from asyncpipe.puzzle.embedded import ThemeRecord


def record(seed: int, words: int = 5) -> ThemeRecord:
    generator = np.random.default_rng(seed)
    return ThemeRecord(
        tuple(f"w{seed}-{n}" for n in range(words)),
        generator.uniform(-1, 1, words).astype(np.float32),
        np.arange(words, dtype=np.int32)[::-1].copy(),
        float(seed) + 0.5,
    )


def same(left: ThemeRecord, right: ThemeRecord) -> bool:
    return (
        left.candidate_words == right.candidate_words
        and np.array_equal(left.candidate_scores, right.candidate_scores)
        and np.array_equal(left.ranked_rows, right.ranked_rows)
        and left.theme_vector_norm == right.theme_vector_norm
    )


WINDOWS = [
    {"Birds": record(1), "Fruit": record(2)},
    {},  # a window that embedded nothing new
    {"Metals": record(3), "Birds": record(4), "Tea": record(5)},  # Birds again: a spare
    {"Knots": record(6)},
]


def test_the_spool_reads_as_the_dict_its_windows_were_gathered_in(tmp_path: Path) -> None:
    gathered: dict[str, ThemeRecord] = {}
    with closing(RecordSpool(tmp_path)) as spool:
        for window in WINDOWS:
            gathered.update(window)
            spool.append(window)

        assert len(spool) == len(gathered) == 5
        assert list(spool) == list(gathered) == ["Birds", "Fruit", "Metals", "Tea", "Knots"]
        items = list(spool.items())
        assert [theme for theme, _ in items] == list(gathered)
        assert all(same(found, gathered[theme]) for theme, found in items)
        assert all(same(a, b) for a, b in zip(spool.values(), gathered.values()))
        # Birds keeps its first place and takes the later window's record.
        assert same(spool["Birds"], record(4))
        assert "Tea" in spool and "Dogs" not in spool
        with pytest.raises(KeyError):
            spool["Dogs"]
        # Read again: the same, the file is read from its start each time.
        assert [theme for theme, _ in spool.items()] == list(gathered)


def test_the_records_are_on_disk_not_in_the_spool(tmp_path: Path) -> None:
    with closing(RecordSpool(tmp_path)) as spool:
        spool.append({f"theme {n}": record(n, words=50) for n in range(200)})
        spool.append({f"theme {n}": record(n, words=50) for n in range(200, 400)})
        held = [value for value in vars(spool).values() if isinstance(value, ThemeRecord)]
        assert held == []
        assert not any(
            isinstance(value, dict) and any(isinstance(v, ThemeRecord) for v in value.values())
            for value in vars(spool).values()
        )
        assert len(spool) == 400
        assert same(spool["theme 321"], record(321, words=50))


def test_an_empty_spool_is_an_empty_mapping_and_leaves_no_file(tmp_path: Path) -> None:
    spool = RecordSpool(tmp_path / "tables")  # the folder is made if missing
    assert len(spool) == 0
    assert list(spool.items()) == []
    spool.close()
    assert list((tmp_path / "tables").iterdir()) == []
