"""A wordplay group's grid holds no other tile that completes its compound."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from asyncpipe.puzzle.assembly import assemble_puzzles
from asyncpipe.puzzle.lexicon import Category, Compound, Lexicon
from asyncpipe.puzzle.selection import PuzzleSelection
from tests.puzzle.test_assembly import assert_valid_puzzles, ranked

CATEGORIES = {
    # "place" and "fly" ranked first: each is a Rooms or Insects tile but completes
    # FIRE ___ (fireplace, firefly), "fly" only by the completions, not as a member.
    "Rooms": ("place", "kitchen", "hall", "attic", "study", "pantry"),
    "Insects": ("fly", "ant", "bee", "wasp", "moth", "gnat"),
    "Gems": ("ruby", "opal", "jade", "pearl", "topaz", "garnet"),
    "FIRE ___": ("man", "wood", "place", "storm", "stone", "works"),
}
FIRE = Compound("fire", "first")


def _selection() -> PuzzleSelection:
    lexicon = Lexicon.of(
        Category(
            name,
            members,
            compound=FIRE if name == "FIRE ___" else None,
            completions=(*members, "fly", "ant") if name == "FIRE ___" else (),
        )
        for name, members in CATEGORIES.items()
    )
    rng = np.random.default_rng(3)
    table: dict[str, np.ndarray] = {}
    for axis, members in enumerate(CATEGORIES.values()):
        for word in members:
            table.setdefault(word, np.eye(8)[axis] + 0.3 * rng.normal(size=8))

    def vectors(theme: str, words: Sequence[str]) -> np.ndarray:
        return np.array([table[word] for word in words])

    return PuzzleSelection(
        lexicon,
        {name: name for name in CATEGORIES},
        vectors,
        lambda *_: False,
        max_overlap=0.2,
        pool_size=8,
    )


def test_a_tile_completing_the_compound_never_sits_beside_its_wordplay_group() -> None:
    result = assemble_puzzles(
        [ranked(name, members) for name, members in CATEGORIES.items()],
        puzzle_count=1,
        themes_per_puzzle=4,
        words_per_theme=4,
        selection=_selection(),
    )
    assert_valid_puzzles(result, 4, 4)
    (puzzle,) = result.puzzles
    assert puzzle.themes == ["Rooms", "Insects", "Gems", "FIRE ___"]
    others = {word for group in puzzle.groups[:3] for word in group.words}
    assert not others & {"place", "fly", "ant"}
    assert "place" not in puzzle.groups[3].words  # a Rooms member by meaning too
