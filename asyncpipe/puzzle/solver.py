"""The exhaustive embedding solver: the best and second-best ways to split a grid.

Among every way to split `groups * size` words into unordered groups of `size`
(2,627,625 ways for 4 x 4) it finds the split with the highest total within-group
similarity, by scoring the C(16, 4) = 1,820 possible groups once and summing four
of them per split over a table built once per process (`split_table`; pass it with
`(4, 4)` as a pool initializer to build it before the first puzzle arrives).
Also here: the verdict on an intended split (margin) and the difficulty derived from it.

Pure numpy and the standard library, no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

#: Default for `solver_difficulty(ambiguity_margin=...)`, a fraction of the best split's gain.
DEFAULT_AMBIGUITY_MARGIN = 0.05

#: Refuse to tabulate more splits than this: 4 x 4 has 2,627,625, 5 x 4 has 2.5e9.
MAX_SPLITS = 5_000_000


Split = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class SolverResult:
    """The two best splits of one similarity matrix, and what a random split scores.

    Splits are tuples of groups of item indexes, each group sorted, groups
    ordered by their first item. Ties go to the split listed first in the table.
    """

    best_split: Split
    best_total: float
    second_split: Split
    second_total: float
    #: The mean total over all splits: every pair is inside a group equally often.
    mean_total: float
    split_count: int
    #: Total within-group similarity of each possible group, `group_members` order.
    group_scores: np.ndarray = field(repr=False, compare=False)

    def total_of(self, split: Sequence[Sequence[int]]) -> float:
        """The total of any split, summed exactly as the table sums it, so ties stay ties."""
        groups = len(split)
        size = len(split[0]) if groups else 0
        indexes = _group_indexes(_canonical(split, groups, size), groups, size)
        total = float(self.group_scores[indexes[0]])
        for index in indexes[1:]:
            total += float(self.group_scores[index])
        return total


def solver_verdict(solved: SolverResult, intended: Split) -> tuple[bool, float, Split]:
    """(optimal, margin, best split) for the intended split against the solver's result.

    The margin is the intended total minus the best total of any other split:
    positive when the intended split is the unique optimum, 0 on a tie,
    negative by as much as the best split beats it otherwise.
    """
    groups = len(intended)
    intended = _canonical(intended, groups, len(intended[0]) if groups else 0)
    intended_total = solved.total_of(intended)
    if solved.best_split == intended:
        return True, intended_total - solved.second_total, intended
    margin = intended_total - solved.best_total
    if margin >= 0.0:  # tied with the split the table lists first
        return True, 0.0, intended
    return False, margin, solved.best_split


def solver_difficulty(
    solved: SolverResult, margin: float, ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN
) -> tuple[float, bool]:
    """(difficulty, ambiguous) from the solver's margin, on the puzzle's own scale.

    The scale is the gain, the best total minus the mean total over all splits:
    how much structure the best split finds beyond a random one. Scaling by it
    makes both figures blind to a constant added to every cosine (embeddings
    differ a lot in their baseline cosine) and to a common factor.

    difficulty = clip(1 - margin / (f * gain), 0, 1), where f * gain is the margin
    a perfectly clustered puzzle of the same gain would have: with cosine 1 inside
    a cluster and c between clusters, the closest rival swaps two words and loses
    2 (size - 1)(1 - c), while the gain is groups C(size, 2) (n - size)/(n - 1) (1 - c),
    so f = 4 (n - 1) / (n (n - size)) (0.3125 for 4 x 4). So 0 means as clear as
    ideal clusters, 1 means the solver cannot tell (margin 0 or below, or no gain).

    ambiguous = margin < ambiguity_margin * gain; with the default 0.05 on 4 x 4
    that is difficulty above 0.84. A negative margin is always ambiguous.
    """
    groups = len(solved.best_split)
    size = len(solved.best_split[0])
    items = groups * size
    gain = solved.best_total - solved.mean_total
    if gain <= 0.0:
        return 1.0, True
    ideal_margin = gain * 4 * (items - 1) / (items * (items - size))
    difficulty = min(1.0, max(0.0, 1.0 - margin / ideal_margin))
    return difficulty, margin < ambiguity_margin * gain


def best_splits(similarity: np.ndarray, groups: int, size: int) -> SolverResult:
    """The best and second-best splits of `groups * size` items into groups of `size`.

    A split's total is the sum over its groups of the pairwise similarities inside
    each group (the upper triangle of `similarity` is read; the diagonal never).
    """
    items = groups * size
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.shape != (items, items):
        raise ValueError(
            f"similarity is {similarity.shape}, {groups} x {size} needs {items} x {items}"
        )
    table = split_table(groups, size)
    scores = group_scores(similarity, size)

    totals = scores[table[:, 0]]
    for column in range(1, groups):
        totals += scores[table[:, column]]
    best = int(np.argmax(totals))
    best_total = float(totals[best])
    if len(totals) > 1:
        totals[best] = -np.inf  # our own array: mask the best to find the runner-up
        second = int(np.argmax(totals))
        second_total = float(totals[second])
    else:
        second, second_total = best, -math.inf

    first, other = np.triu_indices(items, k=1)
    mean_total = groups * math.comb(size, 2) * float(similarity[first, other].mean())
    return SolverResult(
        best_split=_split_of(table[best], items, size),
        best_total=best_total,
        second_split=_split_of(table[second], items, size),
        second_total=second_total,
        mean_total=mean_total,
        split_count=len(table),
        group_scores=scores,
    )


def group_scores(similarity: np.ndarray, size: int) -> np.ndarray:
    """Sum of the pairwise similarities inside each possible group, `group_members` order."""
    members = group_members(similarity.shape[0], size)
    first, second = np.triu_indices(size, k=1)
    return similarity[members[:, first], members[:, second]].sum(axis=1)


@functools.cache
def group_members(items: int, size: int) -> np.ndarray:
    """(C(items, size), size): the items of every possible group, in lexicographic order."""
    members = np.array(list(combinations(range(items), size)), dtype=np.intp)
    members.setflags(write=False)
    return members


@functools.cache
def group_masks(items: int, size: int) -> np.ndarray:
    """The bitmask of every possible group (bit i set for item i), `group_members` order."""
    masks = (np.int64(1) << group_members(items, size).astype(np.int64)).sum(axis=1)
    masks.setflags(write=False)
    return masks


def split_count(groups: int, size: int) -> int:
    """How many ways split `groups * size` items into unordered groups of `size`."""
    return math.factorial(groups * size) // (
        math.factorial(size) ** groups * math.factorial(groups)
    )


@functools.cache
def split_table(groups: int, size: int) -> np.ndarray:
    """Every split of `groups * size` items into groups of `size`, once, as group indexes.

    Row r lists `groups` indexes into `group_members(groups * size, size)`. Each
    split appears exactly once, in canonical form: the first group holds item 0,
    each next group the lowest item not yet placed. Built by recursion on the
    number of groups: for each first group (item 0 and `size - 1` others), the
    splits of the remaining items are the table one group smaller, renumbered.
    The array is read-only, int16 when the groups fit (21 MB for 4 x 4), and
    column-major so the solver's per-column gathers read contiguous memory.
    """
    if groups < 1 or size < 1:
        raise ValueError(f"cannot split into {groups} groups of {size}")
    count = split_count(groups, size)
    if count > MAX_SPLITS:
        raise ValueError(f"{groups} x {size} has {count:,} splits, more than {MAX_SPLITS:,}")
    items = groups * size
    index_type = np.int16 if math.comb(items, size) <= np.iinfo(np.int16).max else np.int32
    if groups == 1:
        table = np.zeros((1, 1), dtype=index_type)
    else:
        rest = split_table(groups - 1, size)
        members = group_members(items, size)
        # In lexicographic order the groups holding item 0 come first.
        firsts = math.comb(items - 1, size - 1)
        placed = np.zeros((firsts, items), dtype=bool)
        placed[np.arange(firsts)[:, None], members[:firsts]] = True
        remaining = np.nonzero(~placed)[1].reshape(firsts, items - size).astype(np.int64)
        # Each first group renumbers the smaller table's groups into this one's.
        local = group_members(items - size, size)
        masks = (np.int64(1) << remaining[:, local]).sum(axis=2)  # (firsts, local groups)
        renumbered = _index_of_masks(masks, items, size).astype(index_type)
        table = np.empty((firsts, len(rest), groups), dtype=index_type)
        table[:, :, 0] = np.arange(firsts, dtype=index_type)[:, None]
        table[:, :, 1:] = renumbered[:, rest]
        table = table.reshape(count, groups)
    table = np.asfortranarray(table)
    table.setflags(write=False)
    return table


def _index_of_masks(masks: np.ndarray, items: int, size: int) -> np.ndarray:
    """The `group_members` index of each group bitmask."""
    all_masks = group_masks(items, size)
    order = _mask_order(items, size)
    return order[np.searchsorted(all_masks[order], masks)]


@functools.cache
def _mask_order(items: int, size: int) -> np.ndarray:
    order = np.argsort(group_masks(items, size), kind="stable")
    order.setflags(write=False)
    return order


def _group_indexes(split: Split, groups: int, size: int) -> list[int]:
    items = groups * size
    masks = np.array([sum(1 << item for item in group) for group in split], dtype=np.int64)
    return [int(index) for index in _index_of_masks(masks, items, size)]


def _canonical(split: Sequence[Sequence[int]], groups: int, size: int) -> Split:
    """Each group sorted, groups ordered by their first item; ValueError if not a split."""
    canonical = tuple(sorted(tuple(sorted(int(item) for item in group)) for group in split))
    placed = [item for group in canonical for item in group]
    if any(len(group) != size for group in canonical) or sorted(placed) != list(
        range(groups * size)
    ):
        raise ValueError(f"{split!r} is not a split of {groups * size} items into groups of {size}")
    return canonical


def _split_of(row: np.ndarray, items: int, size: int) -> Split:
    members = group_members(items, size)
    return tuple(tuple(int(item) for item in members[index]) for index in row)
