"""Batches in a row through the CLI, with a history: no repeated group, no recent category.

Real subprocesses on one workdir (the offline GloVe provider, the builtin categories),
as the daily CI job runs them one after the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncpipe.io.history_file import append_batch
from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.history import PublishedBatch, PublishedGroup
from tests.support import load, run_cli
from tests.test_cli import new_workdir

HISTORY = Path("data/history/published.jsonl")
METADATA = Path("data/outputs/puzzle_metadata.json")
FINAL = Path("data/outputs/final_puzzles.json")
COUNT = 10


def _groups(folder: Path) -> list[tuple[str, frozenset[str]]]:
    """Each group of the batch in `folder`: its theme and its four tiles."""
    puzzles = load(folder, FINAL)
    groups = []
    for puzzle in puzzles.values():
        words = puzzle["words"]
        per_theme = len(words) // len(puzzle["themes"])
        for index, theme in enumerate(puzzle["themes"]):
            groups.append((theme, frozenset(words[index * per_theme : (index + 1) * per_theme])))
    return groups


def _run(folder: Path, *flags: str) -> None:
    result = run_cli(["run", "--count", str(COUNT), "--workdir", str(folder), *flags], folder)
    assert result.returncode == 0, result.stderr[-2000:]


def test_three_batches_in_a_row_share_no_group_and_no_recent_category(tmp_path: Path) -> None:
    folder = new_workdir(tmp_path / "daily", {"themes.avoid_recent_batches": 10})
    batches = []
    for _ in range(3):
        _run(folder)  # the same seed each time: only the history tells the batches apart
        batches.append(_groups(folder))

    themes = [{theme for theme, _ in batch} for batch in batches]
    assert all(len(batch) == COUNT * 4 for batch in batches)
    assert not themes[0] & themes[1] and not themes[1] & themes[2] and not themes[0] & themes[2]
    groups = [group for batch in batches for group in batch]
    assert len(set(groups)) == len(groups)
    lines = (folder / HISTORY).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert [len(json.loads(line)["groups"]) for line in lines] == [COUNT * 4] * 3
    history = load(folder, METADATA)["history"]
    assert history["batches_before"] == 2
    assert history["categories_reused"] == 0


def test_a_history_too_full_to_avoid_repeats_brings_back_the_least_recently_used(
    tmp_path: Path,
) -> None:
    folder = new_workdir(tmp_path / "full")
    lexicon = load_lexicon()
    names = sorted(lexicon.categories)
    # Every category was published recently, each with its four most familiar members:
    # the first half two batches ago, the second half in the newest batch.
    half = len(names) // 2
    for number, part in enumerate((names[:half], names[half:])):
        groups = tuple(PublishedGroup(name, lexicon.categories[name].members[:4]) for name in part)
        append_batch(folder / HISTORY, PublishedBatch(f"earlier-{number}", groups))

    _run(folder)

    published = {name: frozenset(lexicon.categories[name].members[:4]) for name in names}
    groups = _groups(folder)
    assert len(groups) == COUNT * 4
    for theme, tiles in groups:
        assert theme in names[:half], f"{theme} is not among the least recently used"
        assert len(tiles & published[theme]) <= 1, (theme, sorted(tiles))
    history = load(folder, METADATA)["history"]
    assert history["batches_before"] == 2
    assert history["categories_reused"] == COUNT * 4
    assert len((folder / HISTORY).read_text(encoding="utf-8").splitlines()) == 3


@pytest.mark.parametrize("resume", [False, True], ids=["afresh", "resumed"])
def test_a_damaged_history_stops_the_run_with_one_line_naming_file_and_line(
    tmp_path: Path, resume: bool
) -> None:
    folder = new_workdir(tmp_path / "damaged")
    (folder / HISTORY).parent.mkdir(parents=True)
    (folder / HISTORY).write_text('{"history": 1, "batch": "x", "groups": []}\n{oops\n')
    flags = ["--resume"] if resume else []
    result = run_cli(["run", "--count", "1", "--workdir", str(folder), *flags], folder)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"{folder / HISTORY}, line 2: damaged history" in errors[0]
    assert "Traceback" not in result.stderr


def test_history_flag_names_the_file_relative_to_the_current_directory(tmp_path: Path) -> None:
    folder = new_workdir(tmp_path / "flag")
    result = run_cli(
        ["run", "--count", "1", "--workdir", str(folder), "--history", "elsewhere.jsonl"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "elsewhere.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert not (folder / HISTORY).exists()
