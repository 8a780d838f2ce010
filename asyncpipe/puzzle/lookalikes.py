"""Look-alike words on one grid: a shared stem, a long common substring, a small edit distance.

Two tiles that look alike ("cart" and "card", "sunflower" and "flower") make a
puzzle about spelling rather than meaning; the scorer counts such pairs and turns
them into a penalty. Pure: the standard library and rapidfuzz's edit distance, and
numpy for `look_alike_matrix`, the same verdicts for many words at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from asyncpipe.puzzle.words import variant_key

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


#: Each textual pair takes this share of what is left below 1 (1 pair 0.25, 2 pairs 0.44, ...).
TEXTUAL_PAIR_WEIGHT = 0.25


def textual_pairs(
    words: Sequence[str], keys: Sequence[str] | None = None
) -> tuple[tuple[int, int, str], ...]:
    """Every two words of the grid that look alike, as (i, j, reason) with i < j.

    One reason per pair, the first that holds: "shared stem" (same variant key:
    dance, dancing), "edit distance" (Levenshtein distance at most 2 and at most a
    third of the shorter word, both words at least 4 letters: cart, card; not
    river, tiger), "common substring" (a common run of at least
    5 letters, or of at least 75% of the shorter word and 3 letters: sunflower,
    flower). Case is ignored.

    `keys`: the words' variant keys (`variant_key` of each, lowercased), when the
    caller has them; a scoring worker is handed them, so that it never reads the
    lexicon those keys come from (about 17 MB of each worker's memory).
    """
    lowered = [word.lower() for word in words]
    if keys is None:
        keys = [variant_key(word) for word in lowered]
    elif len(keys) != len(lowered):
        raise ValueError(f"{len(keys)} variant keys for {len(lowered)} words")
    found: list[tuple[int, int, str]] = []
    for i, j in combinations(range(len(lowered)), 2):
        reason = _look_alike(lowered[i], lowered[j], keys[i] == keys[j])
        if reason is not None:
            found.append((i, j, reason))
    return tuple(found)


@lru_cache(maxsize=262_144)
def look_alike(first: str, second: str) -> str | None:
    """Why two words look alike (see `textual_pairs`), or None when they do not.

    Cached: the assembly asks about the same pairs in every round of a batch.
    """
    first, second = first.lower(), second.lower()
    return _look_alike(first, second, variant_key(first) == variant_key(second))


def look_alike_matrix(words: Sequence[str]) -> np.ndarray:
    """Whether each two of `words` look alike (`look_alike(a, b) is not None`), as a
    boolean matrix; a word looks like itself.

    The assembly's search asks this of its pools, 30 to 60 words, for every puzzle
    it tries: pair by pair in Python that was most of the assembly's time. Here the
    same three rules run once per rule: the stems compared as labels, one matrix of
    edit distances (rapidfuzz, in C++), and the common runs found through each word's
    runs of the lengths the rules ask for.
    """
    lowered = [word.lower() for word in words]
    count = len(lowered)
    stems: dict[str, int] = {}
    stem = np.array([stems.setdefault(variant_key(word), len(stems)) for word in lowered])
    alike = stem[:, None] == stem[None, :]
    if count < 2:
        return alike
    lengths = np.array([len(word) for word in lowered])
    shorter = np.minimum.outer(lengths, lengths)
    # Distances above the most any pair may have come back as that most plus one.
    distance = process.cdist(
        lowered, lowered, scorer=Levenshtein.distance, score_cutoff=_EDIT_MAX, dtype=np.int32
    )
    alike |= (shorter >= _EDIT_MIN_LENGTH) & (
        distance <= np.minimum(_EDIT_MAX, shorter // _EDIT_SHARE)
    )
    # As in `_look_alike`: a run of `needed` letters of the shorter word in the longer.
    needed = np.minimum(
        _SUBSTRING_LETTERS,
        np.maximum(_SUBSTRING_FLOOR, np.ceil(_SUBSTRING_SHARE * shorter).astype(np.int64)),
    )
    for size in np.unique(needed).tolist():
        alike |= (needed == size) & _share_a_run(lowered, size)
    return alike


def _share_a_run(words: Sequence[str], size: int) -> np.ndarray:
    """Whether each two words have a run of `size` letters in common."""
    owners: dict[str, list[int]] = {}
    for index, word in enumerate(words):
        for run in _runs(word, size):
            owners.setdefault(run, []).append(index)
    shared = np.zeros((len(words), len(words)), dtype=bool)
    for indexes in owners.values():
        if len(indexes) > 1:
            rows = np.asarray(indexes)
            shared[rows[:, None], rows[None, :]] = True
    return shared


@lru_cache(maxsize=65_536)
def _runs(word: str, size: int) -> frozenset[str]:
    return frozenset(word[start : start + size] for start in range(len(word) - size + 1))


def textual_penalty(pair_count: int) -> float:
    """1 - (1 - 0.25) ** pair_count: 0 for none, 0.25, 0.44, 0.58, ... towards 1."""
    return 1.0 - (1.0 - TEXTUAL_PAIR_WEIGHT) ** pair_count


def edit_distance(first: str, second: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions (rapidfuzz, in C++:
    the assembly compares thousands of pairs a batch, and this was most of its time)."""
    return int(Levenshtein.distance(first, second))


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
    # A run of `needed` letters in common is what the two rules ask (5 letters, or 75%
    # of the shorter word and 3); looking for one is far cheaper than the longest run.
    needed = min(_SUBSTRING_LETTERS, max(_SUBSTRING_FLOOR, math.ceil(_SUBSTRING_SHARE * shorter)))
    short, long = (first, second) if len(first) <= len(second) else (second, first)
    if any(short[start : start + needed] in long for start in range(len(short) - needed + 1)):
        return _COMMON_SUBSTRING
    return None
