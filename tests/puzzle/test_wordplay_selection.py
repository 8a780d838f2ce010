"""A wordplay group's grid holds no other tile that completes its compound."""

from __future__ import annotations

from asyncpipe.puzzle.assembly import assemble_puzzles
from asyncpipe.puzzle.lexicon import Category, Compound
from asyncpipe.puzzle.selection import PuzzleSelection
from tests.puzzle.planted import planted_selection
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
    return planted_selection(
        [
            Category(
                name,
                members,
                compound=FIRE if name == "FIRE ___" else None,
                completions=(*members, "fly", "ant") if name == "FIRE ___" else (),
            )
            for name, members in CATEGORIES.items()
        ],
        seed=3,
        noise=0.3,
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
