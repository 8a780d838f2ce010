"""Group and puzzle difficulty levels: ordered as the measured figures say, one of each
level in a 4-group puzzle, evenly spread in other shapes, ties by position, and a puzzle
level that follows the solver's margin."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from asyncpipe.puzzle.difficulty import (
    GROUP_COLORS,
    PUZZLE_LABELS,
    group_closeness,
    group_ease,
    group_levels,
    levels_by_rank,
    puzzle_level,
)
from asyncpipe.puzzle.scoring import score_puzzle
from asyncpipe.puzzle.solver import SolverResult, solver_difficulty
from tests.puzzle.grids import INTENDED, PLAIN_WORDS, cosines


def planted(
    noise: tuple[float, ...], centres: np.ndarray, size: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Exact words: sqrt(1 - n^2) * centre + n * a direction of the word's own.

    Inside group g every pair has cosine 1 - n_g^2 and the theme fit is sqrt(1 - n_g^2),
    whatever the seed: the figures are known in advance, not drawn.
    """
    groups, dimensions = centres.shape
    words = np.zeros((groups * size, dimensions + groups * size))
    for item in range(groups * size):
        group = item // size
        words[item, :dimensions] = math.sqrt(1.0 - noise[group] ** 2) * centres[group]
        words[item, dimensions + item] = noise[group]
    themes = np.zeros((groups, dimensions + groups * size))
    themes[:, :dimensions] = centres
    return words.astype(np.float32), themes.astype(np.float32)


def centres_with(pairs: dict[tuple[int, int], float], groups: int = 4) -> np.ndarray:
    """Unit centres whose cosines are 0 except the given pairs (a Cholesky factor)."""
    gram = np.eye(groups)
    for (first, second), cosine in pairs.items():
        gram[first, second] = gram[second, first] = cosine
    return np.linalg.cholesky(gram)


# --- group levels, from planted figures ------------------------------------------------


def test_the_tightest_group_far_from_the_rest_is_yellow_and_the_loose_one_by_another_purple(
    table_4x4: np.ndarray,
) -> None:
    # Group 0 tight and far; group 1 loose but far; groups 2 and 3 sit close to each
    # other, 3 the looser of the two.
    words, themes = planted((0.3, 0.6, 0.4, 0.5), centres_with({(2, 3): 0.8}))

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.group_levels == (1, 2, 3, 4)
    assert [GROUP_COLORS[level - 1] for level in score.group_levels] == [
        "yellow",
        "green",
        "blue",
        "purple",
    ]
    # Closeness, not coherence alone, put group 1 above group 2: it is the looser one.
    assert score.coherence[1] < score.coherence[2]
    assert score.closeness[1] == pytest.approx(0.0, abs=1e-6)
    assert score.closeness[2] == pytest.approx(score.closeness[3])
    assert score.closeness[2] > 0.6
    assert list(score.group_ease) == sorted(score.group_ease, reverse=True)


def test_levels_follow_the_groups_wherever_they_sit_in_the_grid(table_4x4: np.ndarray) -> None:
    # The same planted groups as above, listed in another order: each keeps its level.
    order = (3, 0, 2, 1)
    noise = (0.3, 0.6, 0.4, 0.5)
    centres = centres_with({(2, 3): 0.8})
    words, themes = planted(tuple(noise[group] for group in order), centres[list(order)])

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.group_levels == (4, 1, 3, 2)


def test_moving_a_group_towards_another_makes_it_harder(table_4x4: np.ndarray) -> None:
    noise = (0.45, 0.45, 0.4, 0.5)
    apart = score_puzzle(*planted(noise, centres_with({})), PLAIN_WORDS)
    close = score_puzzle(*planted(noise, centres_with({(0, 1): 0.7})), PLAIN_WORDS)

    assert apart.group_levels[0] == 2  # tied with group 1 on every figure: position decides
    assert close.group_levels[0] in (3, 4) and close.group_levels[1] in (3, 4)
    assert close.group_ease[0] < apart.group_ease[0]


def test_every_four_group_puzzle_has_one_group_of_each_level(table_4x4: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        themes = rng.standard_normal((4, 24))
        words = np.repeat(themes, 4, axis=0) + rng.uniform(0.3, 1.2) * rng.standard_normal((16, 24))

        score = score_puzzle(words, themes, PLAIN_WORDS)

        assert sorted(score.group_levels) == [1, 2, 3, 4]
        easiest_first = sorted(range(4), key=lambda group: score.group_levels[group])
        eases = [score.group_ease[group] for group in easiest_first]
        assert eases == sorted(eases, reverse=True)


def test_ease_ignores_a_shift_and_a_scale_of_every_cosine(table_4x4: np.ndarray) -> None:
    # One grid, its cosines as a low-baseline embedding and a high-baseline one would give them.
    words, themes = planted((0.3, 0.6, 0.4, 0.5), centres_with({(2, 3): 0.8}))
    unit_words = words / np.linalg.norm(words.astype(np.float64), axis=1, keepdims=True)
    unit_themes = themes / np.linalg.norm(themes.astype(np.float64), axis=1, keepdims=True)
    similarity, to_themes = cosines(words), unit_words @ unit_themes.T

    def ease_of(scale: float, shift: float) -> np.ndarray:
        inside = similarity * scale + shift
        fit = to_themes * scale + shift
        blocks = [slice(4 * group, 4 * group + 4) for group in range(4)]
        pairs = np.triu_indices(4, k=1)
        coherence = [float(inside[block, block][pairs].mean()) for block in blocks]
        theme_fit = [float(fit[block, group].mean()) for group, block in enumerate(blocks)]
        closeness = group_closeness(inside, 4)
        return np.array(group_ease(inside, fit, 4, coherence, theme_fit, closeness))

    np.testing.assert_allclose(ease_of(0.1, 0.85), ease_of(1.0, 0.0), rtol=1e-9)


def test_groups_alike_in_every_figure_take_their_levels_by_position(
    table_4x4: np.ndarray,
) -> None:
    basis = np.eye(4, dtype=np.float32)
    score = score_puzzle(np.repeat(basis, 4, axis=0), basis, PLAIN_WORDS)

    assert score.group_levels == (1, 2, 3, 4)


def test_ties_go_to_the_earlier_group_at_the_decimals_the_outputs_show() -> None:
    assert group_levels((1.0, 2.0, 2.0, 0.5)) == (3, 1, 2, 4)
    assert group_levels((2.0, 2.0 + 1e-9, 0.0, 1.0)) == (1, 2, 4, 3)
    assert group_levels((0.0, 0.0, 0.0, 0.0)) == (1, 2, 3, 4)


def test_a_puzzle_with_no_spread_in_its_cosines_ranks_by_position(table_4x4: np.ndarray) -> None:
    axes = np.eye(20, dtype=np.float32)  # every word-word and word-theme cosine is 0
    score = score_puzzle(axes[:16], axes[16:], PLAIN_WORDS)

    assert score.group_ease == (0.0, 0.0, 0.0, 0.0)
    assert score.group_levels == (1, 2, 3, 4)


# --- other shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "levels"),
    [
        (1, (1,)),
        (2, (1, 4)),
        (3, (1, 3, 4)),
        (4, (1, 2, 3, 4)),
        (5, (1, 2, 3, 3, 4)),
        (6, (1, 2, 2, 3, 3, 4)),
        (8, (1, 1, 2, 2, 3, 3, 4, 4)),
    ],
)
def test_levels_spread_evenly_over_the_ranks_easiest_yellow_hardest_purple(
    groups: int, levels: tuple[int, ...]
) -> None:
    assert levels_by_rank(groups) == levels


def test_from_four_groups_on_every_level_is_used() -> None:
    for groups in range(4, 13):
        assert set(levels_by_rank(groups)) == {1, 2, 3, 4}
        assert list(levels_by_rank(groups)) == sorted(levels_by_rank(groups))


def test_a_three_group_puzzle_has_a_yellow_and_a_purple_group() -> None:
    words, themes = planted((0.3, 0.5, 0.4), centres_with({(1, 2): 0.8}, groups=3))

    score = score_puzzle(words, themes, PLAIN_WORDS[:12])

    assert score.group_levels == (1, 4, 3)


def test_a_puzzle_of_five_pairs_spreads_its_levels(table_4x4: np.ndarray) -> None:
    words, themes = planted((0.2, 0.3, 0.4, 0.5, 0.6), centres_with({}, groups=5), size=2)

    score = score_puzzle(words, themes, PLAIN_WORDS[:10], group_size=2)

    assert score.group_levels == (1, 2, 3, 3, 4)


# --- the puzzle level ------------------------------------------------------------------


def test_puzzle_levels_start_at_the_documented_cut_points() -> None:
    assert [puzzle_level(value, False) for value in (0.0, 0.399, 0.4, 0.599, 0.6, 0.8, 1.0)] == [
        1,
        1,
        2,
        2,
        3,
        4,
        4,
    ]
    assert PUZZLE_LABELS == ("easy", "medium", "hard", "expert")


def test_an_ambiguous_puzzle_is_expert_whatever_its_difficulty() -> None:
    assert puzzle_level(0.1, True) == 4


def test_the_puzzle_level_never_drops_as_the_solver_margin_shrinks() -> None:
    solved = SolverResult(
        best_split=INTENDED,
        best_total=20.0,
        second_split=INTENDED,
        second_total=18.0,
        mean_total=8.0,
        split_count=2_627_625,
        group_scores=np.zeros(1),
    )
    levels = []
    for margin in np.linspace(5.0, -1.0, 301):  # from clearer than ideal to beaten
        difficulty, ambiguous = solver_difficulty(solved, float(margin))
        levels.append(puzzle_level(difficulty, ambiguous))

    assert levels == sorted(levels)
    assert levels[0] == 1 and levels[-1] == 4
    assert set(levels) == {1, 2, 3, 4}


def test_a_wordplay_group_is_purple_whatever_its_ease_and_the_others_shift_down() -> None:
    ease = (3.0, 0.5, 2.0, 1.0)  # group 0 the easiest by its vectors
    assert group_levels(ease) == (1, 4, 2, 3)
    assert group_levels(ease, hardest=(0,)) == (4, 3, 1, 2)
    assert group_levels(ease, hardest=(1,)) == group_levels(ease)


def test_a_score_learns_its_wordplay_groups_from_the_themes() -> None:
    basis = np.eye(4)
    plain = score_puzzle(np.repeat(basis, 4, axis=0), basis, PLAIN_WORDS)
    score = dataclasses.replace(plain, group_ease=(3.0, 0.5, 2.0, 1.0))
    marked = score.with_wordplay(["Trees", "Gems", "FIRE ___", "Dances"])
    assert marked.wordplay_groups == (2,)
    assert marked.group_levels[2] == 4
    assert marked.to_json()["wordplay_groups"] == [2]
    assert score.with_wordplay(["Trees", "Gems", "Rooms", "Dances"]) is score
    assert "wordplay_groups" not in score.to_json()
