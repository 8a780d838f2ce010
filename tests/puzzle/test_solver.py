"""The exhaustive split solver against a plain brute force on small grids, and its 4 x 4 table."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import numpy as np
import pytest

from asyncpipe.puzzle.solver import (
    _split_of,
    best_splits,
    group_masks,
    group_scores,
    split_count,
    split_table,
)
from tests.puzzle.grids import INTENDED, Split, cosines


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
    similarity = cosines(vectors)
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
    similarity = cosines(rng.normal(size=(16, 6)))

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


@pytest.mark.parametrize("seed", range(12))
def test_the_halves_solver_finds_the_table_s_best_and_runner_up_on_4x4(seed: int) -> None:
    """Four groups go by halves; the table of all 2,627,625 splits is the reference."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(16, 6))
    if seed % 4 == 0:  # planted clusters: a clear best, a close runner-up
        vectors = np.repeat(rng.normal(size=(4, 6)), 4, axis=0) + 0.4 * vectors
    similarity = cosines(vectors)
    table = split_table(4, 4)
    scores = group_scores(similarity, 4)
    totals = scores[table].sum(axis=1)
    two = np.argpartition(-totals, 1)[:2]
    ranked = two[np.argsort(-totals[two], kind="stable")]

    solved = best_splits(similarity, 4, 4)

    assert sorted(solved.best_split) == sorted(_split_of(table[ranked[0]], 16, 4))
    assert sorted(solved.second_split) == sorted(_split_of(table[ranked[1]], 16, 4))
    assert solved.best_total == pytest.approx(totals[ranked[0]], abs=1e-9)
    assert solved.second_total == pytest.approx(totals[ranked[1]], abs=1e-9)
    assert solved.split_count == 2_627_625


def test_the_runner_up_is_found_when_it_shares_no_half_with_the_best() -> None:
    """Best ((0-3), (4-7), (8-11), (12-15)); runner-up swaps words across every pairing."""
    similarity = np.zeros((16, 16))
    for group in range(4):
        members = range(4 * group, 4 * group + 4)
        for a, b in combinations(members, 2):
            similarity[a, b] = similarity[b, a] = 1.0
    # Make one split that mixes all four groups nearly as good as the intended one.
    rival = [(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)]
    for group in rival:
        for a, b in combinations(group, 2):
            similarity[a, b] = similarity[b, a] = 0.99

    solved = best_splits(similarity, 4, 4)

    assert solved.best_split == INTENDED
    assert solved.second_split == tuple(rival)
    assert solved.best_total - solved.second_total == pytest.approx(6 * 4 * 0.01)
