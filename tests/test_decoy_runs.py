"""Red herrings in whole runs: named decoys, and still exactly one solution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.decoys import unique
from tests.support import FINAL, METADATA, run_cli
from tests.test_cli import new_workdir

pytestmark = pytest.mark.slow


def _run(folder: Path, herrings: int) -> tuple[dict, dict]:
    workdir = new_workdir(folder, {"quality.red_herrings": herrings})
    result = run_cli(["run", "--count", "40"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    return (
        json.loads((workdir / FINAL).read_text(encoding="utf-8")),
        json.loads((workdir / METADATA).read_text(encoding="utf-8")),
    )


def test_most_puzzles_carry_a_named_decoy_and_keep_one_solution(tmp_path: Path) -> None:
    puzzles, metadata = _run(tmp_path / "one", 1)
    lexicon = load_lexicon()
    categories = metadata["candidates"]["categories"]

    def belongs(word: str, theme: str) -> bool:
        return theme in categories and lexicon.is_member(word, categories[theme])

    with_decoys = [entry for entry in puzzles.values() if entry.get("decoys")]
    assert len(with_decoys) > len(puzzles) / 2
    for entry in puzzles.values():
        groups = [entry["words"][4 * index : 4 * index + 4] for index in range(4)]
        assert unique(groups, entry["themes"], belongs), entry
        for decoy in entry.get("decoys", []):
            host = entry["themes"].index(decoy["category"])
            assert decoy["word"] in groups[host]
            assert decoy["pretends"] in entry["themes"] and decoy["pretends"] != decoy["category"]
            assert belongs(decoy["word"], decoy["pretends"])
    placed = metadata["decoys"]["placed"]
    assert metadata["decoys"]["puzzles_with_decoys"] == len(with_decoys) == len(placed)
    assert all(puzzles[name]["decoys"] == decoys for name, decoys in placed.items())


def test_no_decoys_when_params_ask_for_none(tmp_path: Path) -> None:
    puzzles, metadata = _run(tmp_path / "none", 0)
    assert not any(entry.get("decoys") for entry in puzzles.values())
    assert metadata["decoys"]["puzzles_with_decoys"] == 0
