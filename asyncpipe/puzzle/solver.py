"""The exhaustive embedding solver: the best and second-best ways to split a grid.

Among every way to split `groups * size` words into unordered groups of `size`
(2,627,625 ways for 4 x 4) it finds the split with the highest total within-group
similarity, exactly, and the runner-up. It scores the C(16, 4) = 1,820 possible
groups once; for four groups it then meets in the middle over the 12,870 halves of
the grid (`_best_by_halves`, a few milliseconds), for other shapes it sums the
groups of every split over a table (`split_table`). Both keep read-only tables per
process: `prepare` builds them, as a pool initializer, before the first puzzle.
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
    ordered by their first item. An exact tie goes to whichever split the search
    meets first; `solver_verdict` counts a tie with the intended split as optimal.
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
        """The total of any split, summed as the solver's own totals are, so ties stay ties."""
        return _total_of(self.group_scores, split)


def _total_of(scores: np.ndarray, split: Sequence[Sequence[int]]) -> float:
    """Sum a split's group scores in canonical group order: one summation for every total."""
    groups = len(split)
    size = len(split[0]) if groups else 0
    indexes = _group_indexes(_canonical(split, groups, size), groups, size)
    total = float(scores[indexes[0]])
    for index in indexes[1:]:
        total += float(scores[index])
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
    if margin >= 0.0:  # tied with the split the solver met first
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
    Four groups (the puzzle's shape) are solved by halves in a few milliseconds;
    other shapes by the table of every split (`split_table`).
    """
    items = groups * size
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.shape != (items, items):
        raise ValueError(
            f"similarity is {similarity.shape}, {groups} x {size} needs {items} x {items}"
        )
    scores = group_scores(similarity, size)
    second: Split | None
    if groups == 4 and size > 1:
        best, second = _best_by_halves(scores, size)
    else:
        best, second = _best_by_table(scores, groups, size)
    first, other = np.triu_indices(items, k=1)
    mean_total = groups * math.comb(size, 2) * float(similarity[first, other].mean())
    return SolverResult(
        best_split=best,
        best_total=_total_of(scores, best),
        second_split=second if second is not None else best,
        second_total=_total_of(scores, second) if second is not None else -math.inf,
        mean_total=mean_total,
        split_count=split_count(groups, size),
        group_scores=scores,
    )


def _best_by_table(scores: np.ndarray, groups: int, size: int) -> tuple[Split, Split | None]:
    """Sum four group scores for every split in the table; ties go to the first listed."""
    items = groups * size
    table = split_table(groups, size)
    totals = scores[table[:, 0]]
    for column in range(1, groups):
        totals += scores[table[:, column]]
    best = int(np.argmax(totals))
    if len(totals) == 1:
        return _split_of(table[best], items, size), None
    totals[best] = -np.inf  # our own array: mask the best to find the runner-up
    second = int(np.argmax(totals))
    return _split_of(table[best], items, size), _split_of(table[second], items, size)


def _best_by_halves(scores: np.ndarray, size: int) -> tuple[Split, Split]:
    """Best and second-best split into four groups, by meeting in the middle.

    Every split of 4 groups pairs the group holding item 0 with one of the others:
    a half of 2 * size items holding item 0, and the complementary half. So the
    best split is the best, over the halves H holding item 0, of best2(H) +
    best2(complement), where best2 of a half is its best split into two groups
    (C(2s - 1, s - 1) = 35 ways for s = 4). The runner-up needs only each half's
    two best inner splits, and one of its halves at its best: were both halves at
    their second best, swapping either for its best would give two different
    splits that beat it, one of them not the overall best. So three candidates
    per half, best+best, best+second and second+best, hold both answers, after
    the overall best is ruled out in the (up to three) pairings it appears in.
    About 12,870 x 35 sums and 19,305 candidates, against 2,627,625 table rows.
    """
    items = 4 * size
    halves = _half_tables(size)
    top, top_value, runner, runner_value = _two_best_inner_splits(scores, halves)
    others = halves.complement
    candidates = np.stack(
        [
            top_value[: halves.holding_zero] + top_value[others],
            top_value[: halves.holding_zero] + runner_value[others],
            runner_value[: halves.holding_zero] + top_value[others],
        ]
    )
    picks = ((top, top), (top, runner), (runner, top))

    def groups_of(kind: int, half: int) -> frozenset[int]:
        mine, theirs = picks[kind]
        other = int(others[half])
        return frozenset(
            (
                int(halves.inner_first[half, mine[half]]),
                int(halves.inner_second[half, mine[half]]),
                int(halves.inner_first[other, theirs[other]]),
                int(halves.inner_second[other, theirs[other]]),
            )
        )

    found, half = np.unravel_index(int(candidates.argmax()), candidates.shape)
    best = groups_of(int(found), int(half))
    masks = group_masks(items, size)
    holding_zero = next(index for index in best if masks[index] & 1)
    for partner in best - {holding_zero}:
        paired = halves.index_of(int(masks[holding_zero] | masks[partner]))
        for kind in range(3):
            if groups_of(kind, paired) == best:
                candidates[kind, paired] = -np.inf
    found, half = np.unravel_index(int(candidates.argmax()), candidates.shape)
    second = groups_of(int(found), int(half))
    return _split_of_groups(best, items, size), _split_of_groups(second, items, size)


#: Halves whose inner splits are summed at once: the whole (12,870 x 35) float64 table
#: of sums was 11 MB at the peak of every scoring worker, for values read once.
_HALVES_PER_CHUNK = 1024


def _two_best_inner_splits(
    scores: np.ndarray, halves: _Halves
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each half's best inner split and its runner-up: (top, top value, runner, runner
    value), one entry per half; ties go to the first listed, as `argmax` has them."""
    count = len(halves.inner_first)
    top = np.empty(count, dtype=np.intp)
    runner = np.empty(count, dtype=np.intp)
    top_value = np.empty(count, dtype=np.float64)
    runner_value = np.empty(count, dtype=np.float64)
    for start in range(0, count, _HALVES_PER_CHUNK):
        chunk = slice(start, start + _HALVES_PER_CHUNK)
        values = np.take(scores, halves.inner_first[chunk])
        values += np.take(scores, halves.inner_second[chunk])
        rows = np.arange(len(values))
        best = values.argmax(axis=1)
        top[chunk], top_value[chunk] = best, values[rows, best]
        values[rows, best] = -np.inf
        second = values.argmax(axis=1)
        runner[chunk], runner_value[chunk] = second, values[rows, second]
    return top, top_value, runner, runner_value


@dataclass(frozen=True)
class _Halves:
    """Every half (2 * size of the 4 * size items) and its splits into two groups."""

    #: Group indexes of each half's inner splits: (halves, C(2s - 1, s - 1)) each.
    inner_first: np.ndarray
    inner_second: np.ndarray
    #: Halves holding item 0 come first in lexicographic order: this many of them.
    holding_zero: int
    #: For each half holding item 0, the index of the half that completes it.
    complement: np.ndarray
    masks: np.ndarray = field(repr=False)
    order: np.ndarray = field(repr=False)

    def index_of(self, mask: int) -> int:
        return int(self.order[np.searchsorted(self.masks[self.order], mask)])


@functools.cache
def _half_tables(size: int) -> _Halves:
    items, half = 4 * size, 2 * size
    sets = np.array(list(combinations(range(items), half)), dtype=np.int64)
    masks = (np.int64(1) << sets).sum(axis=1)
    # Each inner split: the group holding the half's lowest item, and the rest of the half.
    local = np.array([(0, *rest) for rest in combinations(range(1, half), size - 1)])
    first_masks = (np.int64(1) << sets[:, local]).sum(axis=2)
    index_type = np.int16 if math.comb(items, size) <= np.iinfo(np.int16).max else np.int32
    inner_first = _index_of_masks(first_masks, items, size).astype(index_type)
    inner_second = _index_of_masks(masks[:, None] - first_masks, items, size).astype(index_type)
    holding_zero = int(np.count_nonzero(sets[:, 0] == 0))
    order = np.argsort(masks)
    full = (1 << items) - 1
    complement = order[np.searchsorted(masks[order], full - masks[:holding_zero])]
    for array in (inner_first, inner_second, complement, masks, order):
        array.setflags(write=False)
    return _Halves(inner_first, inner_second, holding_zero, complement, masks, order)


def prepare(groups: int, size: int) -> None:
    """Build what `best_splits` needs for this shape, once per process (a pool initializer)."""
    if groups == 4 and size > 1:
        _half_tables(size)
    else:
        split_table(groups, size)


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


def _split_of_groups(indexes: frozenset[int], items: int, size: int) -> Split:
    members = group_members(items, size)
    groups = [tuple(int(item) for item in members[index]) for index in indexes]
    return _canonical(groups, len(groups), size)
