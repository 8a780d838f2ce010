"""score_puzzle on hand-made vectors with known answers, and inside a real forkserver pool."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import msgspec
import numpy as np
import pytest

from asyncpipe.puzzle.scoring import PuzzleScore, score_puzzle
from asyncpipe.puzzle.solver import best_splits
from tests.puzzle.grids import INTENDED, PLAIN_WORDS, clustered, cosines, random_centres

# --- the solver ------------------------------------------------------------------------


def test_solver_recovers_four_planted_clusters(table_4x4: np.ndarray) -> None:
    words, themes = clustered(random_centres(4, 128, seed=1), noise=0.02, seed=2)

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.solver_optimal is True
    assert score.solver_margin > 0
    assert score.solver_best_groups == INTENDED
    assert score.difficulty < 0.25
    assert score.ambiguous is False
    assert score.misplaced_words == ()


def test_two_overlapping_clusters_make_the_puzzle_ambiguous(table_4x4: np.ndarray) -> None:
    centres = random_centres(4, 128, seed=3)
    centres[1] = centres[0]  # groups 0 and 1 share one centre: mixing them costs nothing
    words, themes = clustered(centres, noise=0.02, seed=4)

    score = score_puzzle(words, themes, PLAIN_WORDS)
    solved = best_splits(cosines(words), 4, 4)

    gain = solved.best_total - solved.mean_total
    assert abs(score.solver_margin) < 0.05 * gain
    assert score.ambiguous is True
    assert score.difficulty > 0.9
    # The clusters that do not overlap are still found.
    assert {(8, 9, 10, 11), (12, 13, 14, 15)} <= set(score.solver_best_groups)


def test_words_sitting_in_the_other_cluster_make_the_intended_split_lose(
    table_4x4: np.ndarray,
) -> None:
    centres = random_centres(4, 128, seed=5)
    words, themes = clustered(centres, noise=0.02, seed=6)
    words[[3, 4]] = words[[4, 3]]  # word 3 now lies in cluster 1, word 4 in cluster 0

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.solver_optimal is False
    assert score.solver_margin < 0
    assert score.solver_best_groups == (
        (0, 1, 2, 4),
        (3, 5, 6, 7),
        (8, 9, 10, 11),
        (12, 13, 14, 15),
    )
    assert score.difficulty == 1.0
    assert score.ambiguous is True
    assert score.misplaced_words == (3, 4)


def test_a_tie_with_the_intended_split_counts_as_optimal_with_zero_margin(
    table_4x4: np.ndarray,
) -> None:
    words = np.eye(16, dtype=np.float32)  # every pair has cosine 0: every split scores 0
    themes = np.eye(16, dtype=np.float32)[:4]

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.solver_optimal is True
    assert score.solver_margin == 0.0
    assert score.solver_best_groups == INTENDED
    assert score.difficulty == 1.0
    assert score.ambiguous is True


# --- the embedding figures -------------------------------------------------------------


def test_orthogonal_groups_score_perfectly(table_4x4: np.ndarray) -> None:
    basis = np.eye(4, dtype=np.float32)
    words = np.repeat(basis, 4, axis=0) * np.float32(3.0)  # length must not matter

    score = score_puzzle(words, basis, PLAIN_WORDS)

    assert score.coherence == pytest.approx((1.0,) * 4)
    assert score.theme_fit == pytest.approx((1.0,) * 4)
    assert score.separation == pytest.approx(1.0)
    assert score.silhouette == pytest.approx((1.0,) * 16)
    assert score.mean_silhouette == pytest.approx(1.0)
    assert score.misplaced_words == ()
    assert score.solver_optimal is True
    assert score.solver_margin == pytest.approx(6.0)  # a swap loses 3 pairs in each group
    assert score.difficulty == pytest.approx(0.0)


def test_a_word_on_another_groups_centre_is_misplaced_with_negative_silhouette(
    table_4x4: np.ndarray,
) -> None:
    basis = np.eye(4, dtype=np.float32)
    words = np.repeat(basis, 4, axis=0)
    words[0] = basis[1]

    score = score_puzzle(words, basis, PLAIN_WORDS)

    assert score.silhouette[0] == pytest.approx(-1.0)  # a = 1 from its own group, b = 0
    assert score.misplaced_words == (0,)
    assert score.theme_fit[0] == pytest.approx(0.75)
    assert score.coherence[0] == pytest.approx(0.5)  # 3 of its 6 pairs still have cosine 1


def test_theme_fit_and_coherence_on_a_two_by_two_grid() -> None:
    words = np.array([[1, 0], [1, 1], [0, 1], [0, 5]], dtype=np.float32)
    themes = np.array([[2, 0], [0, 1]], dtype=np.float32)

    score = score_puzzle(words, themes, ["apple", "river", "tiger", "piano"], group_size=2)

    half_root = math.sqrt(0.5)
    assert score.theme_fit == pytest.approx(((1 + half_root) / 2, 1.0))
    assert score.coherence == pytest.approx((half_root, 1.0))
    # Between pairs: (0,2)=0, (0,3)=0, (1,2)=h, (1,3)=h; within: h and 1.
    assert score.separation == pytest.approx((half_root + 1) / 2 - half_root / 2)
    assert score.misplaced_words == ()
    assert score.solver_best_groups == ((0, 1), (2, 3))


def test_shapes_that_do_not_fit_are_rejected() -> None:
    words = np.ones((16, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="groups"):
        score_puzzle(words, np.ones((3, 8), dtype=np.float32), PLAIN_WORDS)
    with pytest.raises(ValueError, match="dimensions"):
        score_puzzle(words, np.ones((4, 9), dtype=np.float32), PLAIN_WORDS)
    with pytest.raises(ValueError, match="words"):
        score_puzzle(words, np.ones((4, 8), dtype=np.float32), PLAIN_WORDS[:15])


# --- the textual figures ---------------------------------------------------------------


def test_puzzle_score_counts_its_textual_pairs(table_4x4: np.ndarray) -> None:
    words = list(PLAIN_WORDS)
    words[1], words[6] = "card", "cart"
    vectors, themes = clustered(random_centres(4, 32, seed=8), noise=0.02, seed=9)

    score = score_puzzle(vectors, themes, words)

    assert score.textual_pairs == ((1, 6, "edit distance"),)
    assert score.textual_penalty == pytest.approx(0.25)


# --- determinism and transport -----------------------------------------------------------


def test_same_input_gives_an_identical_score_that_pickles_and_serialises(
    table_4x4: np.ndarray,
) -> None:
    words, themes = clustered(random_centres(4, 64, seed=10), noise=0.3, seed=11)

    first = score_puzzle(words, themes, PLAIN_WORDS)
    second = score_puzzle(words.copy(), themes.copy(), list(PLAIN_WORDS))

    assert first == second
    assert pickle.loads(pickle.dumps(first)) == first
    document = first.to_json()
    assert json.loads(json.dumps(document)) == document
    assert document["solver_best_groups"] == [list(group) for group in first.solver_best_groups]
    assert all(value == round(value, 6) for value in document["silhouette"] + document["coherence"])
    assert len(document["closeness"]) == len(document["group_ease"]) == 4
    assert all(value == round(value, 6) for value in document["closeness"] + document["group_ease"])


def test_the_group_figures_are_measured_with_the_rest(table_4x4: np.ndarray) -> None:
    words, themes = clustered(random_centres(4, 64, seed=14), noise=0.3, seed=15)

    score = score_puzzle(words, themes, PLAIN_WORDS)

    assert score.has_group_figures
    assert sorted(score.group_levels) == [1, 2, 3, 4]
    assert score.puzzle_level in (1, 2, 3, 4)
    # Closeness is a between-group mean, so it stays below the group's own coherence here.
    assert all(near < inside for near, inside in zip(score.closeness, score.coherence))


def test_a_score_recorded_without_the_group_figures_reads_back_as_incomplete(
    table_4x4: np.ndarray,
) -> None:
    words, themes = clustered(random_centres(4, 64, seed=16), noise=0.3, seed=17)
    recorded = msgspec.to_builtins(score_puzzle(words, themes, PLAIN_WORDS))
    del recorded["closeness"], recorded["group_ease"]  # as an older version wrote it

    older = msgspec.convert(recorded, PuzzleScore)

    assert not older.has_group_figures
    assert older.group_levels == ()


def test_a_forkserver_worker_scores_exactly_as_this_process(table_4x4: np.ndarray) -> None:
    words, themes = clustered(random_centres(4, 64, seed=12), noise=0.3, seed=13)
    here = score_puzzle(words, themes, PLAIN_WORDS)

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        there = pool.submit(score_puzzle, words, themes, PLAIN_WORDS).result(timeout=60)

    assert isinstance(there, PuzzleScore)
    assert there == here
