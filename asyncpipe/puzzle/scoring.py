"""Score an assembled puzzle: how tight its groups are, how well they separate, and
whether an embedding solver would recover the intended grouping.

Pure numpy and the standard library, no I/O: `score_puzzle` is meant to run in a
process-pool worker (forkserver or spawn), so it takes float32 arrays and returns
a small frozen `PuzzleScore` of plain Python values that pickles and turns into
JSON. The only state is a per-process, read-only cache of the partition tables
the solver needs, built on first use (pass `split_table` with `(4, 4)` as a pool
initializer to build it before the first puzzle arrives).

The solver is exhaustive: among every way to split `groups * size` words into
unordered groups of `size` (2,627,625 ways for 4 x 4) it finds the split with the
highest total within-group similarity, by scoring the C(16, 4) = 1,820 possible
groups once and summing four of them per split over a precomputed table.

Not here: choosing words or themes (assembly), ranking candidates (ranking), or
deciding what to do with a poor score (the caller's policy).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from asyncpipe.puzzle.words import variant_key

#: Refuse to tabulate more splits than this: 4 x 4 has 2,627,625, 5 x 4 has 2.5e9.
MAX_SPLITS = 5_000_000

#: Default for `score_puzzle(ambiguity_margin=...)`, a fraction of the best split's gain.
DEFAULT_AMBIGUITY_MARGIN = 0.05

#: Each textual pair takes this share of what is left below 1 (1 pair 0.25, 2 pairs 0.44, ...).
TEXTUAL_PAIR_WEIGHT = 0.25

_SHARED_STEM = "shared stem"
_COMMON_SUBSTRING = "common substring"
_EDIT_DISTANCE = "edit distance"
#: A common substring this long always counts ("flower" in "sunflower", "motor" in
#: motorbikes and motorcycles); four letters were too few on real puzzles: "sing" in
#: cruising and singers, "king" in biking and trekking.
_SUBSTRING_LETTERS = 5
#: ...and a shorter one counts when it is this share of the shorter word ("car" in "cars"),
_SUBSTRING_SHARE = 0.75
#: but never below this length: "cat" and "hat" share only "at".
_SUBSTRING_FLOOR = 3
#: Words this close by Levenshtein distance ("cart", "card") look alike...
_EDIT_MAX = 2
#: ...when both are at least this long: any two three-letter words are two edits apart;
_EDIT_MIN_LENGTH = 4
#: and the distance is at most a third of the shorter word, since "river" and "tiger"
#: are two edits apart too (so 1 edit for 4 or 5 letters, 2 from 6 letters on).
_EDIT_SHARE = 3

Split = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class PuzzleScore:
    """Every figure for one puzzle, in plain Python types. Words are in grid order.

    Per group (one value per group): `coherence`, the mean pairwise cosine of the
    group's words; `theme_fit`, the mean cosine of its words to its own theme.

    Overall: `separation`, the mean within-group pairwise cosine minus the mean
    between-group one; `silhouette`, one value per word (cosine distance
    d = 1 - cos; a = mean d to the word's own group, b = the lowest mean d to
    another group, s = (b - a) / max(a, b), 0 when both are 0), and its mean;
    `misplaced_words`, the words closer to another theme of the puzzle than to
    their own.

    Textual: `textual_pairs`, any two words of the grid that look alike, as
    (i, j, reason) with i < j; `textual_penalty` = 1 - (1 - 0.25) ** len(pairs),
    0 with no pair, 0.25 with one, 0.44 with two, towards 1.

    Solver (total = sum over groups of the pairwise cosines inside the group):
    `solver_optimal`, the intended split has the highest total of all splits
    (a tie counts as optimal); `solver_margin`, the intended total minus the best
    total of any other split, negative when another split beats it;
    `solver_best_groups`, the best split (the intended one when optimal), each
    group sorted, groups ordered by their first word; `difficulty` in [0, 1] and
    `ambiguous`, see `solver_difficulty`.
    """

    coherence: tuple[float, ...]
    theme_fit: tuple[float, ...]
    separation: float
    silhouette: tuple[float, ...]
    mean_silhouette: float
    misplaced_words: tuple[int, ...]
    textual_pairs: tuple[tuple[int, int, str], ...]
    textual_penalty: float
    solver_optimal: bool
    solver_margin: float
    solver_best_groups: Split
    difficulty: float
    ambiguous: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: lists for tuples, floats rounded to 6 decimals."""
        return {
            "coherence": _rounded(self.coherence),
            "theme_fit": _rounded(self.theme_fit),
            "separation": round(self.separation, 6),
            "silhouette": _rounded(self.silhouette),
            "mean_silhouette": round(self.mean_silhouette, 6),
            "misplaced_words": list(self.misplaced_words),
            "textual_pairs": [[i, j, reason] for i, j, reason in self.textual_pairs],
            "textual_penalty": round(self.textual_penalty, 6),
            "solver_optimal": self.solver_optimal,
            "solver_margin": round(self.solver_margin, 6),
            "solver_best_groups": [list(group) for group in self.solver_best_groups],
            "difficulty": round(self.difficulty, 6),
            "ambiguous": self.ambiguous,
        }


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


def score_puzzle(
    word_vectors: np.ndarray,
    theme_vectors: np.ndarray,
    words: Sequence[str],
    group_size: int = 4,
    ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN,
) -> PuzzleScore:
    """Score a puzzle whose word i belongs to group i // group_size (theme row i // group_size).

    `word_vectors` is (groups * group_size, D), `theme_vectors` (groups, D); neither
    needs to be normalised. Raises ValueError when the shapes do not fit together.
    """
    words_unit = _unit_rows(word_vectors, "word_vectors")
    themes_unit = _unit_rows(theme_vectors, "theme_vectors")
    groups = themes_unit.shape[0]
    items = words_unit.shape[0]
    if groups < 2 or group_size < 2:
        raise ValueError(
            f"a puzzle needs at least 2 groups of 2 words, got {groups} x {group_size}"
        )
    if items != groups * group_size:
        raise ValueError(
            f"{items} word vectors do not make {groups} groups of {group_size} "
            f"(one theme vector per group)"
        )
    if themes_unit.shape[1] != words_unit.shape[1]:
        raise ValueError(
            f"word vectors have {words_unit.shape[1]} dimensions, "
            f"theme vectors {themes_unit.shape[1]}"
        )
    if len(words) != items:
        raise ValueError(f"{len(words)} words for {items} word vectors")

    similarity = words_unit @ words_unit.T
    to_themes = words_unit @ themes_unit.T  # (items, groups)
    membership = np.arange(items) // group_size
    same_group = membership[:, None] == membership[None, :]
    upper = np.triu(np.ones((items, items), dtype=bool), k=1)

    coherence = tuple(
        float(similarity[block][:, block][np.triu_indices(group_size, k=1)].mean())
        for block in (membership == group for group in range(groups))
    )
    theme_fit = tuple(
        float(to_themes[membership == group, group].mean()) for group in range(groups)
    )
    separation = float(
        similarity[upper & same_group].mean() - similarity[upper & ~same_group].mean()
    )
    silhouette = _silhouette(similarity, membership, groups, group_size)
    own_fit = to_themes[np.arange(items), membership]
    misplaced = tuple(int(i) for i in np.flatnonzero((to_themes > own_fit[:, None]).any(axis=1)))

    pairs = textual_pairs(words)
    intended: Split = tuple(
        tuple(range(group * group_size, (group + 1) * group_size)) for group in range(groups)
    )
    solved = best_splits(similarity, groups, group_size)
    optimal, margin, best = solver_verdict(solved, intended)
    difficulty, ambiguous = solver_difficulty(solved, margin, ambiguity_margin)

    return PuzzleScore(
        coherence=coherence,
        theme_fit=theme_fit,
        separation=separation,
        silhouette=tuple(float(value) for value in silhouette),
        mean_silhouette=float(silhouette.mean()),
        misplaced_words=misplaced,
        textual_pairs=pairs,
        textual_penalty=textual_penalty(len(pairs)),
        solver_optimal=optimal,
        solver_margin=margin,
        solver_best_groups=best,
        difficulty=difficulty,
        ambiguous=ambiguous,
    )


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


# --- the solver ------------------------------------------------------------------------


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


# --- the embedding figures -------------------------------------------------------------


def _unit_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit length in float64; an all-zero row stays zero (cosine 0)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows of vectors), got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float64).tiny)


def _silhouette(
    similarity: np.ndarray, membership: np.ndarray, groups: int, size: int
) -> np.ndarray:
    distance = 1.0 - similarity
    np.fill_diagonal(distance, 0.0)  # a word is no distance from itself, whatever its norm
    one_hot = membership[:, None] == np.arange(groups)[None, :]
    sums = distance @ one_hot  # (items, groups): distance from each word to each group
    rows = np.arange(len(membership))
    own = sums[rows, membership] / (size - 1)
    to_others = sums / size
    to_others[rows, membership] = np.inf
    nearest = to_others.min(axis=1)
    widest = np.maximum(own, nearest)
    result: np.ndarray = np.where(
        widest > 0.0, (nearest - own) / np.where(widest > 0.0, widest, 1.0), 0.0
    )
    return result


# --- the textual figures ---------------------------------------------------------------


def textual_pairs(words: Sequence[str]) -> tuple[tuple[int, int, str], ...]:
    """Every two words of the grid that look alike, as (i, j, reason) with i < j.

    One reason per pair, the first that holds: "shared stem" (same variant key:
    dance, dancing), "edit distance" (Levenshtein distance at most 2 and at most a
    third of the shorter word, both words at least 4 letters: cart, card; not
    river, tiger), "common substring" (a common run of at least
    5 letters, or of at least 75% of the shorter word and 3 letters: sunflower,
    flower). Case is ignored.
    """
    lowered = [word.lower() for word in words]
    keys = [variant_key(word) for word in lowered]
    found: list[tuple[int, int, str]] = []
    for i, j in combinations(range(len(lowered)), 2):
        reason = _look_alike(lowered[i], lowered[j], keys[i] == keys[j])
        if reason is not None:
            found.append((i, j, reason))
    return tuple(found)


def textual_penalty(pair_count: int) -> float:
    """1 - (1 - 0.25) ** pair_count: 0 for none, 0.25, 0.44, 0.58, ... towards 1."""
    return 1.0 - (1.0 - TEXTUAL_PAIR_WEIGHT) ** pair_count


def edit_distance(first: str, second: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, one row at a time."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for row, letter in enumerate(first, start=1):
        current = [row]
        for column, other in enumerate(second, start=1):
            current.append(
                min(
                    previous[column] + 1,
                    current[column - 1] + 1,
                    previous[column - 1] + (letter != other),
                )
            )
        previous = current
    return previous[-1]


def longest_common_substring(first: str, second: str) -> int:
    """Length of the longest run of letters the two words share."""
    longest = 0
    previous = [0] * (len(second) + 1)
    for letter in first:
        current = [0] * (len(second) + 1)
        for column, other in enumerate(second, start=1):
            if letter == other:
                current[column] = previous[column - 1] + 1
                longest = max(longest, current[column])
        previous = current
    return longest


def _look_alike(first: str, second: str, same_stem: bool) -> str | None:
    if same_stem:
        return _SHARED_STEM
    shorter = min(len(first), len(second))
    if shorter >= _EDIT_MIN_LENGTH and edit_distance(first, second) <= min(
        _EDIT_MAX, shorter // _EDIT_SHARE
    ):
        return _EDIT_DISTANCE
    shared = longest_common_substring(first, second)
    if shared >= _SUBSTRING_LETTERS or (
        shared >= _SUBSTRING_FLOOR and shared >= _SUBSTRING_SHARE * shorter
    ):
        return _COMMON_SUBSTRING
    return None


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(value, 6) for value in values]
