"""select_themes with wordplay themes: a share of the puzzles get one, as their last."""

from __future__ import annotations

import pytest

from asyncpipe.errors import InputError
from asyncpipe.settings.sections import PuzzleGeneration, Themes
from asyncpipe.stages.themes import select_themes, wordplay_puzzles

ORDINARY = [f"Theme {number:02d}" for number in range(1, 61)]
WORDPLAY = [f"PART{number} ___" for number in range(1, 9)]


def _generation(puzzles: int, **settings: object) -> PuzzleGeneration:
    return PuzzleGeneration(total_puzzle_count=puzzles, themes_per_puzzle=4, **settings)


def test_every_prefix_of_the_batch_holds_its_share_rounded_down() -> None:
    assert wordplay_puzzles(8, 0.25) == [3, 7]
    assert wordplay_puzzles(10, 0.5) == [1, 3, 5, 7, 9]
    assert wordplay_puzzles(5, 0.0) == []
    assert wordplay_puzzles(3, 1.0) == [0, 1, 2]
    for count in range(1, 41):
        assert len(wordplay_puzzles(count, 0.25)) == count // 4


def test_a_wordplay_theme_is_the_last_theme_of_its_puzzle_and_never_a_spare() -> None:
    selection = select_themes(
        ORDINARY + WORDPLAY, "test", Themes(), _generation(8), wordplay_share=0.25
    )
    puzzles = [selection.themes[i : i + 4] for i in range(0, 32, 4)]
    for number, themes in enumerate(puzzles):
        wordplay = [theme for theme in themes if "___" in theme]
        assert wordplay == ([themes[3]] if number in (3, 7) else []), (number, themes)
    assert not any("___" in theme for theme in selection.spare_themes)
    assert len(set(selection.all_themes)) == len(selection.all_themes)


def test_the_draw_is_deterministic_and_moves_with_the_seed() -> None:
    first = select_themes(ORDINARY + WORDPLAY, "test", Themes(), _generation(8), wordplay_share=0.5)
    again = select_themes(ORDINARY + WORDPLAY, "test", Themes(), _generation(8), wordplay_share=0.5)
    other = select_themes(
        ORDINARY + WORDPLAY, "test", Themes(), _generation(8, random_seed=7), wordplay_share=0.5
    )
    assert first == again
    assert first.themes != other.themes


def test_without_a_share_no_wordplay_theme_is_drawn() -> None:
    selection = select_themes(ORDINARY + WORDPLAY, "test", Themes(), _generation(8))
    assert not any("___" in theme for theme in selection.all_themes)


def test_too_few_wordplay_themes_leave_the_rest_of_the_puzzles_ordinary() -> None:
    selection = select_themes(
        ORDINARY + WORDPLAY[:2], "test", Themes(), _generation(8), wordplay_share=1.0
    )
    wordplay = [theme for theme in selection.themes if "___" in theme]
    assert sorted(wordplay) == sorted(WORDPLAY[:2])
    assert len(selection.themes) == 32


def test_wordplay_themes_do_not_count_as_ordinary_ones_when_there_are_too_few() -> None:
    with pytest.raises(InputError, match="only 13 of 20"):
        select_themes(
            ORDINARY[:12] + WORDPLAY, "test", Themes(), _generation(4), wordplay_share=0.25
        )
