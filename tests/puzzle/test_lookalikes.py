"""Look-alike pairs on a grid: shared stems, common substrings, small edit distances."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.lookalikes import (
    edit_distance,
    longest_common_substring,
    look_alike,
    look_alike_matrix,
    textual_pairs,
    textual_penalty,
)
from asyncpipe.puzzle.words import variant_key
from tests.puzzle.grids import PLAIN_WORDS


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


def test_variant_keys_handed_in_are_the_ones_the_stems_are_compared_by() -> None:
    words = ["geese", "goose", "piano", "zebra"]  # an irregular plural: the lexicon's
    keys = [variant_key(word) for word in words]

    assert textual_pairs(words, keys) == textual_pairs(words) == ((0, 1, "shared stem"),)
    # The keys decide: told they differ, the two are no longer one stem.
    assert textual_pairs(words, ["a", "b", "c", "d"]) == ()
    with pytest.raises(ValueError, match="3 variant keys for 4 words"):
        textual_pairs(words, keys[:3])


def test_unrelated_words_make_no_pairs_and_no_penalty() -> None:
    assert textual_pairs(PLAIN_WORDS) == ()
    # Short words are close by chance: one letter apart, two letters in common, two edits.
    assert textual_pairs(["cat", "hat", "dog", "log", "river", "tiger"]) == ()
    assert textual_penalty(0) == 0.0


def test_penalty_grows_with_each_pair_and_stays_below_one() -> None:
    penalties = [textual_penalty(count) for count in range(8)]
    assert penalties[1] == pytest.approx(0.25)
    assert all(lower < higher < 1.0 for lower, higher in pairwise(penalties))


def test_edit_distance_and_common_substring_helpers() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("card", "card") == 0
    assert longest_common_substring("sunflower", "flower") == 6
    assert longest_common_substring("abc", "xyz") == 0


def _pair_by_pair(words: list[str]) -> np.ndarray:
    return np.array([[look_alike(a, b) is not None for b in words] for a in words])


def test_the_matrix_of_look_alikes_gives_the_verdict_of_each_pair() -> None:
    words = [
        "dance", "Dancing", "sunflower", "flower", "cart", "card", "butter", "bitten",
        "river", "tiger", "cat", "hat", "ox", "box", "car", "cars", "motorbikes",
        "motorcycles", "cruising", "singers", "ice cream", "cream", "a", "", "kite",
    ]  # fmt: skip
    assert np.array_equal(look_alike_matrix(words), _pair_by_pair(words))
    assert look_alike_matrix(["oak"]).tolist() == [[True]]
    assert look_alike_matrix([]).shape == (0, 0)


def test_the_matrix_of_look_alikes_agrees_with_each_pair_over_the_lexicon() -> None:
    # Neighbours in alphabetical order share beginnings, in the order of their reversed
    # spelling endings: every rule fires thousands of times in these windows.
    lexicon = load_lexicon()
    words = sorted({word for c in lexicon.categories.values() for word in c.members})
    for order in (words, sorted(words, key=lambda word: word[::-1])):
        for start in range(0, len(order), 1500):
            window = order[start : start + 50]
            assert np.array_equal(look_alike_matrix(window), _pair_by_pair(window)), window
