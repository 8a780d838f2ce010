"""rank_candidates and cosine_to: pure numpy, checked on hand-made inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asyncpipe.puzzle.ranking import cosine_to, rank_candidates
from asyncpipe.puzzle.words import variant_key


def test_candidates_are_ordered_by_score_best_first() -> None:
    ranked = rank_candidates(
        "Fruit", ["pear", "apple", "plum", "fig"], np.array([0.2, 0.9, 0.5, 0.7])
    )

    assert ranked.theme == "Fruit"
    assert ranked.words == ("apple", "fig", "plum", "pear")
    assert ranked.scores == (0.9, 0.7, 0.5, 0.2)
    assert ranked.source_rows == (1, 3, 2, 0)


def test_equal_scores_keep_the_candidate_order() -> None:
    words = ["oak", "elm", "ash", "yew", "fir"]
    scores = np.array([0.5, 0.7, 0.5, 0.7, 0.5])

    ranked = rank_candidates("Trees", words, scores)

    assert ranked.words == ("elm", "yew", "oak", "ash", "fir")
    assert ranked.source_rows == (1, 3, 0, 2, 4)


def test_case_and_inflection_variants_collapse_onto_the_best_scored_one() -> None:
    words = ["dancing", "music", "Dance", "dances", "danced"]
    scores = np.array([0.6, 0.5, 0.7, 0.8, 0.4])

    ranked = rank_candidates("Ballet", words, scores)

    assert ranked.words == ("dances", "music")
    assert ranked.scores == (0.8, 0.5)
    assert ranked.source_rows == (3, 1)


def test_a_capitalised_variant_wins_when_it_scores_best() -> None:
    ranked = rank_candidates("Ballet", ["dances", "Dance", "dancing"], np.array([0.3, 0.9, 0.6]))

    assert ranked.words == ("Dance",)
    assert ranked.source_rows == (1,)


def test_source_rows_point_back_to_the_candidate_list() -> None:
    generator = np.random.default_rng(7)
    words = [
        "river",
        "rivers",
        "lake",
        "lakes",
        "Lake",
        "stream",
        "streams",
        "pond",
        "ponds",
        "ocean",
        "sea",
        "seas",
        "brook",
        "creek",
        "creeks",
        "canal",
        "canals",
        "bay",
    ]
    scores = generator.uniform(-1.0, 1.0, size=len(words))

    ranked = rank_candidates("Water", words, scores)

    assert len(ranked.words) == len(ranked.scores) == len(ranked.source_rows)
    for word, score, row in zip(ranked.words, ranked.scores, ranked.source_rows, strict=True):
        assert words[row] == word
        assert scores[row] == score
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)
    keys = [variant_key(word) for word in ranked.words]
    assert len(keys) == len(set(keys))
    assert set(keys) == {variant_key(word) for word in words}
    # Each family is represented by its best-scored member.
    for word, score in zip(ranked.words, ranked.scores, strict=True):
        family = [
            s for w, s in zip(words, scores, strict=True) if variant_key(w) == variant_key(word)
        ]
        assert score == max(family)


def test_ranked_scores_are_plain_floats() -> None:
    ranked = rank_candidates("Fruit", ["pear", "apple"], np.array([0.25, 0.5], dtype=np.float32))

    assert all(type(score) is float for score in ranked.scores)


def test_no_candidates_rank_to_an_empty_theme() -> None:
    ranked = rank_candidates("Fruit", [], np.array([], dtype=np.float64))

    assert ranked.words == ranked.scores == ranked.source_rows == ()


def test_cosine_to_gives_known_angles() -> None:
    anchor = np.array([1.0, 0.0])
    vectors = np.array(
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0], [3.0, 0.0], [1.0, -math.sqrt(3)]]
    )

    result = cosine_to(anchor, vectors)

    assert result.dtype == np.float64
    np.testing.assert_allclose(result, [1.0, 0.0, -1.0, 1 / math.sqrt(2), 1.0, 0.5], atol=1e-12)


def test_cosine_to_ignores_the_length_of_either_vector() -> None:
    vectors = np.array([[2.0, 1.0, -2.0], [0.5, 0.5, 0.0]], dtype=np.float32)

    short = cosine_to(np.array([1.0, 2.0, 2.0]), vectors)
    long = cosine_to(np.array([10.0, 20.0, 20.0]), vectors * 7)

    np.testing.assert_allclose(short, [0.0, 1.5 / (3 * math.sqrt(0.5))], atol=1e-7)
    np.testing.assert_allclose(long, short, atol=1e-7)


def test_cosine_to_a_zero_vector_is_zero_not_nan() -> None:
    result = cosine_to(np.array([1.0, 1.0]), np.array([[0.0, 0.0], [1.0, 1.0]]))

    assert np.isfinite(result).all()
    assert result[0] == 0.0
    assert result[1] == pytest.approx(1.0)


def test_typicality_ranks_the_members_near_the_theme_and_each_other_first() -> None:
    from asyncpipe.puzzle.ranking import typicality

    theme = np.array([1.0, 0.0, 0.0])
    members = np.array(
        [
            [0.2, 1.0, 0.0],  # far from the theme and from the others: an odd member
            [0.9, 0.3, 0.0],  # near the theme, near the others
            [0.95, -0.1, 0.3],  # nearest the theme
            [0.8, 0.2, 0.1],
        ]
    )
    scores = typicality(theme, members)
    assert int(np.argmin(scores)) == 0
    ranked = rank_candidates("Things", ["odd", "b", "c", "d"], cosine_to(theme, members), scores)
    assert ranked.words[-1] == "odd"
    # The ranked scores stay the cosines to the theme, whatever the order.
    cosines = dict(zip(["odd", "b", "c", "d"], cosine_to(theme, members), strict=True))
    assert ranked.scores == tuple(float(cosines[word]) for word in ranked.words)


def test_a_lone_member_is_typical_by_its_cosine_to_the_theme() -> None:
    from asyncpipe.puzzle.ranking import typicality

    theme = np.array([1.0, 0.0])
    assert typicality(theme, np.array([[1.0, 1.0]])) == pytest.approx([2**-0.5])
