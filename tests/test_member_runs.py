"""Runs whose themes name lexicon categories: members as candidates, the metadata of sources.

Real `python -m asyncpipe` subprocesses on the offline provider, in scratch folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.words import is_variant_of_theme, variant_key
from tests.support import CANDIDATES, FINAL, METADATA, run_cli
from tests.test_cli import new_workdir

pytestmark = pytest.mark.slow

#: Themes a player knows as categories; the shipped lexicon has at least 20 of them.
CATEGORIES = [
    "Trees", "Dog breeds", "Cheeses", "Composers", "Rivers", "Insects", "Snakes",
    "Card games", "Vegetables", "Tools", "Fruits", "Metals", "Philosophers", "Pasta",
    "Cocktails", "Deer", "Painters", "Poets", "Fabrics", "Sports", "Beers", "Fuels",
    "Herbs", "Dances",
]  # fmt: skip
NOT_CATEGORIES = ["Romance", "Swimming", "Piano", "Happiness"]


def _run(tmp_path: Path, themes: list[str], **changes: Any) -> tuple[int, dict, dict, dict]:
    workdir = new_workdir(
        tmp_path,
        {
            "themes.source": "themes.txt",
            "puzzle_generation.theme_selection_method": "sequential",
            "puzzle_generation.spare_theme_fraction": 1.0,
            **changes,
        },
    )
    (workdir / "themes.txt").write_text("\n".join(themes) + "\n", encoding="utf-8")
    result = run_cli(["run", "--count", "4"], cwd=workdir)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr

    def load(relative: str) -> dict:
        return json.loads((workdir / relative).read_text(encoding="utf-8"))

    return result.returncode, load(FINAL), load(METADATA), load(CANDIDATES)


def test_category_themes_make_groups_of_members_only(tmp_path: Path) -> None:
    lexicon = load_lexicon()
    known = [theme for theme in CATEGORIES if lexicon.lookup(theme) is not None]
    assert len(known) >= 20
    code, puzzles, metadata, candidates = _run(tmp_path, known)
    assert code == 0 and len(puzzles) == 4
    sources = metadata["candidates"]["theme_sources"]
    assert set(sources.values()) == {"members"}
    for puzzle in puzzles.values():
        words = puzzle["words"]
        keys = [variant_key(word) for word in words]
        assert len(set(keys)) == 16, words
        for index, theme in enumerate(puzzle["themes"]):
            category = metadata["candidates"]["categories"][theme]
            group = words[4 * index : 4 * index + 4]
            assert all(lexicon.is_member(word, category) for word in group), (theme, group)
            # No tile belongs to another theme of its grid but a named decoy, or names one.
            decoys = {(d["word"], d["pretends"]) for d in puzzle.get("decoys", [])}
            for other in puzzle["themes"]:
                if other != theme:
                    other_category = metadata["candidates"]["categories"][other]
                    for word in group:
                        if lexicon.is_member(word, other_category):
                            assert (word, other) in decoys, (word, theme, other)
                    assert not any(is_variant_of_theme(w, other) for w in group)
    for entry in candidates["candidates"].values():
        assert entry["source"] == "members"
        assert "similarity_scores" not in entry


def _some_themes() -> list[str]:
    lexicon = load_lexicon()
    return NOT_CATEGORIES + [theme for theme in CATEGORIES if lexicon.lookup(theme)]


def test_themes_naming_no_category_fall_back_to_neighbours_by_default(tmp_path: Path) -> None:
    themes = _some_themes()
    code, puzzles, metadata, _ = _run(tmp_path, themes)
    assert code == 0
    sources = metadata["candidates"]["theme_sources"]
    assert {sources[theme] for theme in NOT_CATEGORIES} == {"neighbours"}
    assert metadata["candidates"]["not_a_category"] == "neighbours"
    used = {theme for puzzle in puzzles.values() for theme in puzzle["themes"]}
    assert used & set(NOT_CATEGORIES)  # sequential draw: the first themes are used


def test_themes_naming_no_category_are_replaced_when_params_say_spare(tmp_path: Path) -> None:
    themes = _some_themes()
    code, puzzles, metadata, _ = _run(tmp_path, themes, **{"candidates.not_a_category": "spare"})
    assert code == 0 and len(puzzles) == 4
    sources = metadata["candidates"]["theme_sources"]
    assert {sources[theme] for theme in NOT_CATEGORIES} == {"replaced"}
    for theme in NOT_CATEGORIES:
        assert metadata["failed_themes"][theme]["kind"] == "not_a_category"
    used = {theme for puzzle in puzzles.values() for theme in puzzle["themes"]}
    assert not used & set(NOT_CATEGORIES)
