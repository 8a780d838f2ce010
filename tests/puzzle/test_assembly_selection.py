"""assemble_puzzles with a PuzzleSelection: themes served by lexicon categories."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from asyncpipe.puzzle.assembly import AssemblyResult, assemble_puzzles
from asyncpipe.puzzle.history import History, PublishedBatch, PublishedGroup
from asyncpipe.puzzle.lexicon import Category
from asyncpipe.puzzle.selection import PuzzleSelection
from tests.puzzle.planted import planted_selection
from tests.puzzle.test_assembly import assert_valid_puzzles, ranked

CATEGORIES = {
    "Birds": ("robin", "wren", "eagle", "hawk", "crane", "finch", "heron"),
    "Birds of prey": ("eagle", "hawk", "falcon", "kite", "osprey", "owl"),
    "Machines": ("crane", "lathe", "press", "pump", "drill", "loom"),
    "Trees": ("oak", "elm", "ash", "pine", "birch", "beech"),
    "Gems": ("ruby", "opal", "jade", "pearl", "topaz", "garnet"),
    "Dances": ("waltz", "tango", "polka", "salsa", "samba", "jive"),
}


def _selection(pool_size: int = 8) -> PuzzleSelection:
    return planted_selection(
        [Category(name, members) for name, members in CATEGORIES.items()],
        seed=7,
        noise=0.3,
        max_overlap=0.2,
        pool_size=pool_size,
    )


def _ranked(*names: str) -> list:
    return [ranked(name, CATEGORIES[name]) for name in names]


def test_overlapping_categories_never_share_a_puzzle() -> None:
    result = assemble_puzzles(
        _ranked("Birds", "Birds of prey", "Trees", "Gems", "Dances", "Machines"),
        puzzle_count=1,
        themes_per_puzzle=4,
        words_per_theme=4,
        selection=_selection(),
    )
    assert_valid_puzzles(result, 4, 4)
    (puzzle,) = result.puzzles
    assert not {"Birds", "Birds of prey"} <= set(puzzle.themes)
    assert puzzle.themes == ["Birds", "Trees", "Gems", "Dances"]  # draw order, prey held over
    assert "Birds of prey" in result.unused_themes


def test_a_word_of_another_theme_of_the_grid_is_never_a_tile() -> None:
    birds = ranked("Birds", ("crane", *CATEGORIES["Birds"][:4]))  # crane ranked first
    result = assemble_puzzles(
        [birds, *_ranked("Machines", "Trees", "Gems")],
        puzzle_count=1,
        themes_per_puzzle=4,
        words_per_theme=4,
        selection=_selection(),
    )
    assert_valid_puzzles(result, 4, 4)
    (puzzle,) = result.puzzles
    assert "crane" not in puzzle.words
    for group in puzzle.groups:
        assert set(group.words) <= set(CATEGORIES[group.theme])  # every tile a member


def test_every_group_comes_from_its_themes_pool_and_the_result_is_deterministic() -> None:
    themes = _ranked("Trees", "Gems", "Dances", "Birds")
    first = assemble_puzzles(themes, 1, 4, 4, selection=_selection(pool_size=5))
    second = assemble_puzzles(themes, 1, 4, 4, selection=_selection(pool_size=5))
    assert first == second
    for group in first.puzzles[0].groups:
        assert set(group.words) <= set(CATEGORIES[group.theme][:5])


def _with_history(
    earlier: dict[str, tuple[str, ...]], window: int, pool_size: int = 8
) -> PuzzleSelection:
    history = History(
        (PublishedBatch("earlier", tuple(PublishedGroup(t, w) for t, w in earlier.items())),)
    )
    return dataclasses.replace(_selection(pool_size), history=history.memory(CATEGORIES, window))


def _assembled(selection: PuzzleSelection, *names: str) -> AssemblyResult:
    return assemble_puzzles(
        _ranked(*names),
        puzzle_count=1,
        themes_per_puzzle=4,
        words_per_theme=4,
        selection=selection,
    )


def test_no_group_repeats_a_published_group_of_its_category() -> None:
    themes = ("Birds", "Trees", "Gems", "Dances")
    (first,) = _assembled(_selection(), *themes).puzzles
    published = {group.theme: group.words for group in first.groups}

    # Window 0: the published groups are old, so only the exact repeat is ruled out.
    result = _assembled(_with_history(published, window=0), *themes)

    assert_valid_puzzles(result, 4, 4)
    (again,) = result.puzzles
    assert again.themes == list(themes)
    for group in again.groups:
        assert set(group.words) != set(published[group.theme]), group


def test_a_recent_category_shares_at_most_one_tile_with_its_earlier_group() -> None:
    earlier = ("robin", "wren", "finch", "heron")
    result = _assembled(
        _with_history({"Birds": earlier}, window=1), "Birds", "Trees", "Gems", "Dances"
    )

    assert_valid_puzzles(result, 4, 4)
    (puzzle,) = result.puzzles
    birds = puzzle.groups[puzzle.themes.index("Birds")]
    assert len(set(birds.words) & set(earlier)) == 1, birds.words
    assert {"eagle", "hawk", "crane"} <= set(birds.words)


def test_a_recent_category_that_cannot_keep_the_tile_rule_is_held_over_not_repeated() -> None:
    # Trees has 6 members: a new group would need 3 of the 2 not shown before.
    earlier = {"Trees": ("oak", "elm", "ash", "pine")}
    result = _assembled(
        _with_history(earlier, window=1), "Trees", "Birds", "Gems", "Dances", "Machines"
    )

    assert_valid_puzzles(result, 4, 4)
    (puzzle,) = result.puzzles
    assert "Trees" not in puzzle.themes
    assert "Trees" in result.unused_themes


def _counting_vectors(selection: PuzzleSelection) -> tuple[PuzzleSelection, list[str]]:
    """The selection, with every theme its vectors are asked for recorded."""
    asked: list[str] = []
    vectors = selection.vectors

    def counted(theme: str, words: Sequence[str]) -> np.ndarray:
        asked.append(theme)
        return vectors(theme, words)

    return dataclasses.replace(selection, vectors=counted), asked


def test_a_selection_kept_for_the_next_rounds_assembles_what_a_fresh_one_would() -> None:
    # The planner keeps one selection for a batch's rounds: a spare round adds themes,
    # a rebuild drops some, and every round must still get the puzzles a fresh
    # selection would make of the same themes.
    rounds = [
        ("Trees", "Gems", "Dances", "Birds", "Machines"),
        ("Trees", "Gems", "Dances", "Birds", "Machines", "Birds of prey"),
        ("Trees", "Dances", "Birds", "Machines", "Birds of prey", "Gems"),
        ("Trees", "Gems", "Dances", "Birds", "Machines"),
    ]
    for history in ({}, {"Birds": ("robin", "wren", "finch", "heron")}):
        kept = dataclasses.replace(_with_history(history, window=1, pool_size=4), decoys=1)
        for names in rounds:
            fresh = dataclasses.replace(_with_history(history, window=1, pool_size=4), decoys=1)
            assert assemble_puzzles(_ranked(*names), 1, 4, 4, selection=kept) == (
                assemble_puzzles(_ranked(*names), 1, 4, 4, selection=fresh)
            )


def test_a_selection_asked_the_same_puzzle_again_does_not_search_it_again() -> None:
    themes = _ranked("Trees", "Gems", "Dances", "Birds")
    selection, asked = _counting_vectors(dataclasses.replace(_selection(), decoys=1))
    first = assemble_puzzles(themes, 1, 4, 4, selection=selection)
    assert asked  # the search and the decoys' margins read the vectors
    asked.clear()

    again = assemble_puzzles(themes, 1, 4, 4, selection=selection)

    assert again == first
    assert asked == []
