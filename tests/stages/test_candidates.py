"""asyncpipe.stages.candidates: the nearest puzzle-worthy words to each theme.

Most tests search a hand-made index whose geometry makes the answer certain:
words lie on a circle in the x-y plane, so a word's cosine similarity to a
theme word at 0 degrees is the cosine of its angle.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest

from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.failures import FailureKind
from asyncpipe.puzzle.words import variant_key
from asyncpipe.settings.sections import PuzzleGeneration, VectorSearch
from asyncpipe.stages.candidates import (
    CandidateSearch,
    CandidateSearchResult,
    ThemeCandidates,
    without_variant_duplicates,
)

#: Fruit words at known angles from "fruits" (0 degrees); index order is deliberately not
#: the order of similarity. melon (75 degrees, cos 0.26) and tree lie below 0.3.
FRUIT_ANGLES = {
    "fruits": 0,
    "mango": 60,
    "apple": 10,
    "tree": 100,
    "lemon": 50,
    "cherry": 30,
    "banana": 20,
    "melon": 75,
    "grape": 40,
    "plum": 70,
}
BY_SIMILARITY = ("apple", "banana", "cherry", "grape", "lemon", "mango", "plum")


def _at(degrees: float, length: float = 1.0) -> list[float]:
    radians = math.radians(degrees)
    return [length * math.cos(radians), length * math.sin(radians), 0.0]


def _index(vectors: dict[str, list[float]]) -> VocabularyIndex:
    return VocabularyIndex(
        "tiny", tuple(vectors), np.array(list(vectors.values()), dtype=np.float32)
    )


def _fruit_index(**extra_angles: float) -> VocabularyIndex:
    angles = {**FRUIT_ANGLES, **extra_angles}
    return _index({word: _at(angle) for word, angle in angles.items()})


def _search(
    index: VocabularyIndex,
    themes: list[str],
    generation: PuzzleGeneration | None = None,
    **settings: object,
) -> CandidateSearchResult:
    search = CandidateSearch(index, VectorSearch(**settings))
    return search.search(themes, generation or PuzzleGeneration())


def _words(index: VocabularyIndex, theme: str, **settings: object) -> tuple[str, ...]:
    return _search(index, [theme], None, **settings).candidates[theme].words


# --- order, limits and threshold --------------------------------------------------------


def test_candidates_are_sorted_from_most_to_least_similar() -> None:
    found = _search(_fruit_index(), ["Fruits"]).candidates["Fruits"]
    assert found.words == BY_SIMILARITY
    expected = [math.cos(math.radians(FRUIT_ANGLES[word])) for word in BY_SIMILARITY]
    assert found.similarity_scores == pytest.approx(expected, abs=1e-5)


def test_words_below_the_similarity_threshold_are_dropped() -> None:
    generation = PuzzleGeneration(min_similarity_threshold=0.6)
    found = _search(_fruit_index(), ["Fruits"], generation).candidates["Fruits"]
    # cos 50 degrees = 0.64 passes; cos 60 degrees = 0.5 does not.
    assert found.words == ("apple", "banana", "cherry", "grape", "lemon")
    assert min(found.similarity_scores) >= 0.6


def test_the_default_threshold_drops_words_far_from_the_theme() -> None:
    words = _words(_fruit_index(), "Fruits")
    assert "melon" not in words
    assert "tree" not in words


def test_the_search_stops_at_max_search_candidates() -> None:
    assert _words(_fruit_index(), "Fruits", max_search_candidates=3) == (
        "apple",
        "banana",
        "cherry",
    )


def test_at_most_candidate_words_per_theme_are_kept() -> None:
    generation = PuzzleGeneration(words_per_theme=2, candidate_words_per_theme=2)
    found = _search(_fruit_index(), ["Fruits"], generation).candidates["Fruits"]
    assert found.words == ("apple", "banana")
    assert len(found.similarity_scores) == 2


def test_the_smaller_of_the_two_limits_wins() -> None:
    generation = PuzzleGeneration(words_per_theme=2, candidate_words_per_theme=5)
    found = _search(_fruit_index(), ["Fruits"], generation, max_search_candidates=3)
    assert found.candidates["Fruits"].words == ("apple", "banana", "cherry")


def test_dot_similarity_favours_long_vectors_that_cosine_ranks_lower() -> None:
    vectors = {word: _at(angle) for word, angle in FRUIT_ANGLES.items()}
    vectors["pumpkin"] = _at(35, length=3.0)
    index = _index(vectors)
    assert _words(index, "Fruits", similarity_metric="cosine")[:2] == ("apple", "banana")
    dot = _search(index, ["Fruits"], similarity_metric="dot").candidates["Fruits"]
    assert dot.words[0] == "pumpkin"
    assert dot.similarity_scores[0] == pytest.approx(3 * math.cos(math.radians(35)), abs=1e-5)


# --- which words may be candidates ------------------------------------------------------


def test_stopwords_short_and_non_alphabetic_words_are_never_candidates() -> None:
    index = _fruit_index(the=1, ox=2, Kiwi=3, b52=4, **{"café": 5, "x-ray": 6, "about": 7})
    words = _words(index, "Fruits")
    assert words == BY_SIMILARITY


def test_min_word_length_drops_shorter_words() -> None:
    words = _words(_fruit_index(), "Fruits", min_word_length=5)
    assert "plum" not in words
    assert words == ("apple", "banana", "cherry", "grape", "lemon", "mango")


def test_words_beyond_vocabulary_size_are_never_candidates() -> None:
    index = _fruit_index(yuzu=1)  # the least frequent word, yet the nearest
    assert _words(index, "Fruits")[0] == "yuzu"
    assert "yuzu" not in _words(index, "Fruits", vocabulary_size=len(index) - 1)


def test_a_theme_word_beyond_vocabulary_size_still_gives_the_theme_its_vector() -> None:
    angles = {word: angle for word, angle in FRUIT_ANGLES.items() if word != "fruits"}
    index = _index({**{w: _at(a) for w, a in angles.items()}, "fruits": _at(0)})
    assert _words(index, "Fruits", vocabulary_size=len(index) - 1) == BY_SIMILARITY


def test_the_themes_own_words_and_their_forms_are_never_candidates() -> None:
    index = _fruit_index(fruit=1, fruiting=2, fruitful=3)
    words = _words(index, "Fruits")
    assert words == BY_SIMILARITY


def test_lemmatized_search_keeps_only_the_closest_word_of_a_stem() -> None:
    assert variant_key("cherries") == variant_key("cherry")
    index = _fruit_index(cherries=25)
    words = _words(index, "Fruits", use_lemmatized=True)
    assert "cherries" in words
    assert "cherry" not in words
    assert words.index("cherries") == 2


def test_without_lemmatizing_both_forms_of_a_stem_are_kept_in_order() -> None:
    index = _fruit_index(cherries=25)
    words = _words(index, "Fruits", use_lemmatized=False)
    assert words[:4] == ("apple", "banana", "cherries", "cherry")


def test_the_search_looks_past_a_crowd_of_unfit_nearest_words() -> None:
    # With one word wanted the first pass looks at the four nearest, all forms of the theme.
    vectors = {
        word: _at(angle)
        for word, angle in {
            "dance": 0,
            "dances": 1,
            "dancing": 2,
            "danced": 3,
            "dancer": 4,
            "dancers": 5,
            "tango": 30,
            "ballet": 20,
        }.items()
    }
    assert _words(_index(vectors), "Dance", max_search_candidates=1) == ("ballet",)


# --- multi-word and failed themes -------------------------------------------------------


def test_a_multi_word_theme_searches_around_the_mean_of_its_words() -> None:
    index = _index(
        {
            "sea": _at(0),
            "birds": _at(90),
            "shark": _at(5),
            "gull": _at(45),
            "sparrow": _at(80),
            "stone": [0.0, 0.0, 1.0],
        }
    )
    found = _search(index, ["Sea birds"]).candidates["Sea birds"]
    assert found.words == ("gull", "sparrow", "shark")
    assert found.similarity_scores[0] == pytest.approx(1.0, abs=1e-5)


def test_a_theme_with_no_known_word_fails_with_a_reason_and_has_no_candidates() -> None:
    result = _search(_fruit_index(), ["Unicorns", "Fruits"])
    assert list(result.candidates) == ["Fruits"]
    assert "Unicorns" in result.failed_themes
    failure = result.failed_themes["Unicorns"]
    assert failure.kind is FailureKind.NO_CANDIDATES
    assert "vector index" in failure.reason and "tiny" in failure.reason
    assert "Fruits" not in result.failed_themes


def test_a_theme_with_no_word_above_the_threshold_is_reported_as_failed() -> None:
    index = _index({**{w: _at(a) for w, a in FRUIT_ANGLES.items()}, "stone": [0.0, 0.0, 1.0]})
    result = _search(index, ["Stone", "Fruits"])
    assert "Stone" in result.failed_themes
    assert result.failed_themes["Stone"].kind is FailureKind.NO_CANDIDATES
    assert "0.3" in result.failed_themes["Stone"].reason
    assert result.candidates["Fruits"].words == BY_SIMILARITY


def test_candidates_follow_the_order_of_the_themes_given() -> None:
    index = _fruit_index(sea=-45, birds=-135, gull=-90)
    result = _search(index, ["Sea birds", "Fruits"])
    assert list(result.candidates) == ["Sea birds", "Fruits"]
    assert list(_search(index, ["Fruits", "Sea birds"]).candidates) == ["Fruits", "Sea birds"]


def test_to_json_lists_words_rounded_scores_and_the_count() -> None:
    found = _search(_fruit_index(), ["Fruits"]).candidates["Fruits"]
    document = found.to_json()
    assert document["words"] == list(BY_SIMILARITY)
    assert document["word_count"] == len(BY_SIMILARITY)
    assert document["similarity_scores"] == [round(s, 6) for s in found.similarity_scores]


def test_the_pool_holds_only_puzzle_words_within_vocabulary_size() -> None:
    index = _fruit_index(the=1, ox=2, yuzu=3)
    assert CandidateSearch(index, VectorSearch()).pool_size == len(FRUIT_ANGLES) + 1
    assert CandidateSearch(index, VectorSearch(vocabulary_size=5)).pool_size == 5


# --- the real GloVe index ---------------------------------------------------------------

FRUIT_STEMS = {
    variant_key(word)
    for word in (
        "apple", "banana", "mango", "orange", "grape", "strawberry", "berry", "fig",
        "melon", "pomegranate", "cherry", "peach", "lemon", "pineapple", "coconut", "citrus",
    )
}  # fmt: skip


def test_glove_finds_fruit_names_among_the_candidates_for_fruits(glove: VocabularyIndex) -> None:
    result = CandidateSearch(glove, VectorSearch()).search(["Fruits"], PuzzleGeneration())
    found = result.candidates["Fruits"]
    assert len(found.words) == 50
    assert list(found.similarity_scores) == sorted(found.similarity_scores, reverse=True)
    fruit_names = [word for word in found.words if variant_key(word) in FRUIT_STEMS]
    assert len(fruit_names) >= 5, found.words
    assert not {"fruit", "fruits"} & set(found.words)


# --- variant duplicates in a candidate list, dropped before embedding -------------------------


def _result(**themes: ThemeCandidates) -> CandidateSearchResult:
    return CandidateSearchResult(candidates=dict(themes), failed_themes={})


def test_variant_duplicates_keep_the_first_word_of_each_key_in_order_with_its_score() -> None:
    dances = ThemeCandidates(
        ("Dance", "ballet", "dance", "dances", "tango", "Ballet", "waltzes", "waltz"),
        (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2),
    )

    result, dropped = without_variant_duplicates(_result(Music=dances), use_lemmatized=True)

    kept = result.candidates["Music"]
    assert kept.words == ("Dance", "ballet", "tango", "waltzes")
    assert tuple(kept.similarity_scores) == (0.9, 0.8, 0.5, 0.3)
    assert dropped == 4
    keys = [variant_key(word) for word in kept.words]
    assert len(set(keys)) == len(keys)


def test_variant_duplicates_of_unscored_and_member_lists_keep_their_shape() -> None:
    unscored = ThemeCandidates(("owl", "Owl", "owls", "wren"))
    members = ThemeCandidates(("oak", "elm"), source="members", category="Trees")

    result, dropped = without_variant_duplicates(
        _result(Birds=unscored, Trees=members), use_lemmatized=True
    )

    assert result.candidates["Birds"] == ThemeCandidates(("owl", "wren"))
    assert result.candidates["Trees"] is members
    assert result.categories == {"Trees": "Trees"}
    assert dropped == 2


def test_without_lemmatizing_variant_duplicates_are_left_alone() -> None:
    found = _result(Music=ThemeCandidates(("Dance", "dance", "dances"), (0.9, 0.8, 0.7)))

    assert without_variant_duplicates(found, use_lemmatized=False) == (found, 0)


def test_a_list_without_variant_duplicates_comes_back_as_it_was() -> None:
    found = _result(Fruits=ThemeCandidates(BY_SIMILARITY, tuple(range(len(BY_SIMILARITY)))))

    result, dropped = without_variant_duplicates(found, use_lemmatized=True)

    assert result is found and dropped == 0


def test_scores_are_held_as_one_array_of_doubles_and_the_value_stays_hashable() -> None:
    given = ThemeCandidates(("owl", "wren"), [0.9, 0.123456789])
    again = ThemeCandidates(("owl", "wren"), (0.9, 0.123456789))

    assert isinstance(given.similarity_scores, array)
    assert given.similarity_scores.typecode == "d"  # no float lost to float32
    assert tuple(given.similarity_scores) == (0.9, 0.123456789)
    assert given == again and hash(given) == hash(again)
    assert given != ThemeCandidates(("owl", "wren"), (0.9, 0.5))
    assert given.to_json()["similarity_scores"] == [0.9, 0.123457]
    assert ThemeCandidates(("owl",), array("f", [0.5])).similarity_scores.typecode == "d"
