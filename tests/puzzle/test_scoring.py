"""score_puzzle and the exhaustive split solver, on hand-made vectors with known answers,
against a plain brute force on small grids, and inside a real forkserver process pool."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import combinations, pairwise

import numpy as np
import pytest

from asyncpipe.puzzle.scoring import (
    PuzzleScore,
    best_splits,
    edit_distance,
    group_masks,
    longest_common_substring,
    score_puzzle,
    split_count,
    split_table,
    textual_pairs,
    textual_penalty,
)

Split = tuple[tuple[int, ...], ...]

#: Sixteen words with no two alike, in four groups of four.
PLAIN_WORDS = (
    "apple", "river", "tiger", "piano",
    "cloud", "hammer", "violet", "desk",
    "ocean", "pencil", "mango", "guitar",
    "zebra", "lamp", "forest", "spoon",
)  # fmt: skip

INTENDED: Split = ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15))


@pytest.fixture(scope="module")
def table_4x4() -> np.ndarray:
    """Built once for the module; later calls in this process hit the cache."""
    return split_table(4, 4)


def clustered(
    centres: np.ndarray, noise: float, seed: int, size: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """`size` noisy copies of each centre (grid order), and the centres as themes, float32."""
    rng = np.random.default_rng(seed)
    words = np.repeat(centres, size, axis=0) + noise * rng.normal(
        size=(len(centres) * size, centres.shape[1])
    )
    return words.astype(np.float32), centres.astype(np.float32)


def random_centres(count: int, dimensions: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(seed).normal(size=(count, dimensions))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


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
    solved = best_splits(_cosines(words), 4, 4)

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


def brute_force_splits(items: list[int], size: int) -> Iterator[Split]:
    """Every split of `items` into groups of `size`: the lowest item with each choice of partners."""
    if not items:
        yield ()
        return
    lowest, rest = items[0], items[1:]
    for partners in combinations(rest, size - 1):
        remaining = [item for item in rest if item not in partners]
        for tail in brute_force_splits(remaining, size):
            yield ((lowest, *partners), *tail)


def direct_total(similarity: np.ndarray, split: Split) -> float:
    return sum(float(similarity[a, b]) for group in split for a, b in combinations(group, 2))


@pytest.mark.parametrize(("groups", "size"), [(2, 2), (2, 3), (3, 2), (3, 3), (4, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_agrees_with_brute_force_on_small_grids(groups: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(groups * size, 8))
    similarity = _cosines(vectors)
    totals = {
        split: direct_total(similarity, split)
        for split in brute_force_splits(list(range(groups * size)), size)
    }
    ranked = sorted(totals, key=totals.__getitem__, reverse=True)

    solved = best_splits(similarity, groups, size)

    assert len(totals) == split_count(groups, size) == solved.split_count
    assert solved.best_split == ranked[0]
    assert solved.best_total == pytest.approx(totals[ranked[0]], abs=1e-12)
    assert solved.second_split == ranked[1]
    assert solved.second_total == pytest.approx(totals[ranked[1]], abs=1e-12)
    assert solved.mean_total == pytest.approx(sum(totals.values()) / len(totals), abs=1e-12)
    for split in ranked[:5]:
        assert solved.total_of(split) == pytest.approx(totals[split], abs=1e-12)


def test_small_tables_match_the_known_split_counts() -> None:
    counts = {(2, 2): 3, (3, 3): 280, (4, 2): 105, (3, 4): 5775}
    assert {shape: len(split_table(*shape)) for shape in counts} == counts


def test_4x4_table_lists_every_split_exactly_once(table_4x4: np.ndarray) -> None:
    assert table_4x4.shape == (2_627_625, 4) == (split_count(4, 4), 4)
    assert table_4x4.dtype == np.int16
    assert not table_4x4.flags.writeable

    masks = group_masks(16, 4)[table_4x4]  # (splits, 4) bitmasks
    union = np.bitwise_or.reduce(masks, axis=1)
    assert (union == 0xFFFF).all()
    assert (masks.sum(axis=1) == 0xFFFF).all()  # sum equals union: no item in two groups
    assert (masks[:, 0] & 1 == 1).all()  # canonical: item 0 opens the first group
    keys = np.sort(masks, axis=1)
    flat = ((keys[:, 0] * 65536 + keys[:, 1]) * 65536 + keys[:, 2]) * 65536 + keys[:, 3]
    assert len(np.unique(flat)) == len(table_4x4)


def test_4x4_best_split_beats_every_swap_and_a_local_search(table_4x4: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    similarity = _cosines(rng.normal(size=(16, 6)))

    solved = best_splits(similarity, 4, 4)

    assert solved.best_total == pytest.approx(
        direct_total(similarity, solved.best_split), abs=1e-12
    )
    assert solved.second_total <= solved.best_total
    assert solved.second_split != solved.best_split
    assert not _improving_swap(similarity, solved.best_split)
    for _ in range(20):
        order = rng.permutation(16).tolist()
        start = tuple(tuple(sorted(order[k : k + 4])) for k in range(0, 16, 4))
        local = _hill_climb(similarity, start)
        assert direct_total(similarity, local) <= solved.best_total + 1e-12
        assert solved.total_of(start) == pytest.approx(direct_total(similarity, start), abs=1e-12)


def _improving_swap(similarity: np.ndarray, split: Split) -> Split | None:
    current = direct_total(similarity, split)
    for g, h in combinations(range(len(split)), 2):
        for a in split[g]:
            for b in split[h]:
                moved = [list(group) for group in split]
                moved[g][moved[g].index(a)] = b
                moved[h][moved[h].index(b)] = a
                candidate = tuple(tuple(sorted(group)) for group in moved)
                if direct_total(similarity, candidate) > current + 1e-12:
                    return candidate
    return None


def _hill_climb(similarity: np.ndarray, split: Split) -> Split:
    while (better := _improving_swap(similarity, split)) is not None:
        split = better
    return split


def test_total_of_rejects_something_that_is_not_a_split() -> None:
    solved = best_splits(np.zeros((4, 4)), 2, 2)
    with pytest.raises(ValueError, match="not a split"):
        solved.total_of(((0, 1), (1, 2)))


def test_a_grid_with_too_many_splits_is_refused() -> None:
    with pytest.raises(ValueError, match="splits"):
        split_table(5, 4)


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


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        ("dance", "dancing", "shared stem"),
        ("sunflower", "flower", "common substring"),
        ("cart", "card", "edit distance"),
        ("butter", "bitten", "edit distance"),
        ("Dance", "dances", "shared stem"),
    ],
)
def test_look_alike_pairs_are_found_with_their_reason(first: str, second: str, reason: str) -> None:
    assert textual_pairs(["piano", first, "zebra", second]) == ((1, 3, reason),)


def test_unrelated_words_make_no_pairs_and_no_penalty() -> None:
    assert textual_pairs(PLAIN_WORDS) == ()
    # Short words are close by chance: one letter apart, two letters in common, two edits.
    assert textual_pairs(["cat", "hat", "dog", "log", "river", "tiger"]) == ()
    assert textual_penalty(0) == 0.0


def test_penalty_grows_with_each_pair_and_stays_below_one() -> None:
    penalties = [textual_penalty(count) for count in range(8)]
    assert penalties[1] == pytest.approx(0.25)
    assert all(lower < higher < 1.0 for lower, higher in pairwise(penalties))


def test_puzzle_score_counts_its_textual_pairs(table_4x4: np.ndarray) -> None:
    words = list(PLAIN_WORDS)
    words[1], words[6] = "card", "cart"
    vectors, themes = clustered(random_centres(4, 32, seed=8), noise=0.02, seed=9)

    score = score_puzzle(vectors, themes, words)

    assert score.textual_pairs == ((1, 6, "edit distance"),)
    assert score.textual_penalty == pytest.approx(0.25)


def test_edit_distance_and_common_substring_helpers() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("card", "card") == 0
    assert longest_common_substring("sunflower", "flower") == 6
    assert longest_common_substring("abc", "xyz") == 0


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


def test_a_forkserver_worker_scores_exactly_as_this_process(table_4x4: np.ndarray) -> None:
    words, themes = clustered(random_centres(4, 64, seed=12), noise=0.3, seed=13)
    here = score_puzzle(words, themes, PLAIN_WORDS)

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        there = pool.submit(score_puzzle, words, themes, PLAIN_WORDS).result(timeout=60)

    assert isinstance(there, PuzzleScore)
    assert there == here


def _cosines(vectors: np.ndarray) -> np.ndarray:
    unit = np.asarray(vectors, dtype=np.float64)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    return unit @ unit.T
