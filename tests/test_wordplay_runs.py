"""Wordplay groups in real runs: their share, their level, and that no other tile of
their grid completes their compound (but a named red herring)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.lexicon import is_wordplay_theme
from tests.support import FINAL, run_cli
from tests.test_cli import new_workdir

WORDNET = Path("/usr/share/wordnet")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = new_workdir(tmp_path_factory.mktemp("wordplay"))
    result = run_cli(["run", "--count", "20"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads((workdir / FINAL).read_text(encoding="utf-8"))
    return document


def _wordplay(puzzle: dict[str, Any]) -> list[int]:
    return [i for i, theme in enumerate(puzzle["themes"]) if is_wordplay_theme(theme)]


def test_a_quarter_of_the_puzzles_carry_one_wordplay_group(batch: dict[str, Any]) -> None:
    counts = [len(_wordplay(puzzle)) for puzzle in batch.values()]
    assert len(counts) == 20
    assert max(counts) == 1
    assert 4 <= sum(counts) <= 6  # quality.wordplay_share 0.25, a theme held over aside


def test_a_wordplay_group_is_the_purple_one(batch: dict[str, Any]) -> None:
    for puzzle in batch.values():
        for group in _wordplay(puzzle):
            assert puzzle["group_levels"][group] == 4
            assert puzzle["group_colors"][group] == "purple"
            assert sorted(puzzle["group_levels"]) == [1, 2, 3, 4]


def test_no_other_tile_of_a_wordplay_grid_completes_its_compound(
    batch: dict[str, Any],
) -> None:
    lexicon = load_lexicon()
    # WordNet itself when it is here, not only the lexicon's list of completions.
    lemmas = set()
    for name in ("index.noun", "index.adj", "index.verb", "index.adv"):
        if (WORDNET / name).is_file():
            with (WORDNET / name).open(encoding="utf-8") as lines:
                lemmas.update(line.split(" ", 1)[0] for line in lines if not line[0].isspace())
    checked = 0
    for puzzle in batch.values():
        for group in _wordplay(puzzle):
            category = lexicon.category(puzzle["themes"][group])
            assert category.compound is not None
            part, first = category.compound.part, category.compound.position == "first"
            own = puzzle["words"][4 * group : 4 * group + 4]
            assert set(own) <= set(category.members)
            # A red herring named as one (quality.red_herrings) may pretend to complete
            # it: "foot" of Units of length beside ___ BALL, kept only while the
            # solution stays unique; no other tile may.
            decoys = {
                decoy["word"]
                for decoy in puzzle.get("decoys", [])
                if decoy["pretends"] == category.name
            }
            for word in puzzle["words"]:
                if word in own or word in decoys:
                    continue
                compound = part + word if first else word + part
                assert word not in category.completions, (category.name, word)
                assert compound not in lemmas, (category.name, word)
                checked += 1
    assert checked >= 4 * 12
