"""Look-alike pairs on a grid: shared stems, common substrings, small edit distances."""

from __future__ import annotations

from itertools import pairwise

import pytest

from asyncpipe.puzzle.lookalikes import (
    edit_distance,
    longest_common_substring,
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
