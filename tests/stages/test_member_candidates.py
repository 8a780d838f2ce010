"""asyncpipe.stages.candidates: a theme that names a category takes the category's members."""

from __future__ import annotations

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.failures import FailureKind
from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.words import variant_key
from asyncpipe.settings.sections import Candidates, PuzzleGeneration, VectorSearch
from asyncpipe.stages.candidates import find_candidates, member_candidates
from tests.stages.test_candidates import _fruit_index

LEXICON = Lexicon.of(
    [
        Category(
            "Fruits",
            ("apple", "apples", "banana", "fruitcake", "go", "plum", "Kiwi", "cherry", "grape"),
        ),
        Category("Boats", ("canoe", "tugboat", "ferry", "barge", "yacht")),
    ]
)


def _find(
    themes: list[str],
    index_calls: list[int] | None = None,
    embeddable: object = None,
    **settings: object,
) -> object:
    calls = index_calls if index_calls is not None else []

    def index() -> VocabularyIndex:
        calls.append(1)
        return _fruit_index()

    return find_candidates(
        themes,
        Candidates(**settings),  # type: ignore[arg-type]
        VectorSearch(),
        PuzzleGeneration(),
        LEXICON,
        index,
        embeddable,  # type: ignore[arg-type]
    )


def test_members_leave_out_forms_short_words_and_the_theme_itself() -> None:
    found = member_candidates(
        "Fruits", LEXICON.category("Fruits"), PuzzleGeneration(), VectorSearch()
    )
    # apples: a second form of apple; fruitcake: a compound of the theme word;
    # go: too short; Kiwi: not a lowercase tile.
    assert found.words == ("apple", "banana", "plum", "cherry", "grape")
    assert found.source == "members" and found.category == "Fruits"
    boats = member_candidates(
        "Boats", LEXICON.category("Boats"), PuzzleGeneration(), VectorSearch()
    )
    assert "tugboat" not in boats.words and "canoe" in boats.words


def test_members_stop_at_candidate_words_per_theme() -> None:
    found = member_candidates(
        "boat",
        LEXICON.category("Boats"),
        PuzzleGeneration(candidate_words_per_theme=4, words_per_theme=4),
        VectorSearch(),
    )
    assert found.words == ("canoe", "ferry", "barge", "yacht")


def test_a_batch_of_categories_never_loads_the_vector_index() -> None:
    calls: list[int] = []
    result = _find(["Fruits", "boat"], calls)
    assert calls == []
    assert result.sources() == {"Fruits": "members", "boat": "members"}  # type: ignore[attr-defined]
    assert result.categories == {"Fruits": "Fruits", "boat": "Boats"}  # type: ignore[attr-defined]
    assert result.search_pool_size is None  # type: ignore[attr-defined]


def test_a_theme_naming_no_category_falls_back_to_neighbours() -> None:
    calls: list[int] = []
    result = _find(["Fruits", "fruits"], calls)  # "fruits" is a category too, by case
    assert calls == []
    result = _find(["Boats", "cherry"], calls)
    assert calls == [1]
    assert result.sources() == {"Boats": "members", "cherry": "neighbours"}  # type: ignore[attr-defined]
    assert result.candidates["cherry"].source == "neighbours"  # type: ignore[attr-defined]
    assert result.candidates["cherry"].similarity_scores  # type: ignore[attr-defined]


def test_a_theme_naming_no_category_is_replaced_when_params_say_spare() -> None:
    calls: list[int] = []
    result = _find(["Boats", "Romance"], calls, not_a_category="spare")
    assert calls == []
    assert set(result.candidates) == {"Boats"}  # type: ignore[attr-defined]
    failure = result.failed_themes["Romance"]  # type: ignore[attr-defined]
    assert failure.kind is FailureKind.NOT_A_CATEGORY
    assert result.sources() == {"Boats": "members", "Romance": "replaced"}  # type: ignore[attr-defined]


def test_the_neighbours_source_searches_every_theme_the_older_way() -> None:
    calls: list[int] = []
    result = _find(["Fruits", "apple"], calls, source="neighbours")
    assert calls == [1]
    assert result.sources() == {"Fruits": "neighbours", "apple": "neighbours"}  # type: ignore[attr-defined]
    assert result.categories == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("theme", "expected"),
    [
        ("Philosophers", {"plato", "kant", "hume"}),
        ("Rivers", {"nile", "amazon"}),
        ("Trees", {"oak"}),
        ("Dog breeds", {"poodle"}),
    ],
)
def test_shipped_categories_offer_their_members(theme: str, expected: set[str]) -> None:
    lexicon = load_lexicon()
    found = member_candidates(theme, lexicon.category(theme), PuzzleGeneration(), VectorSearch())
    assert expected <= set(found.words)
    keys = [variant_key(word) for word in found.words]
    assert len(keys) == len(set(keys))


def test_a_category_the_provider_cannot_embed_enough_of_is_no_category_here() -> None:
    calls: list[int] = []
    # The offline index knows only two boats (too few for a group of four), and
    # every fruit but the cherry.
    known = {"canoe", "ferry", "apple", "banana", "plum", "grape"}
    result = _find(["Boats", "Fruits"], calls, lambda word: word in known)
    assert calls == [1]  # Boats was searched for neighbours
    assert result.sources() == {"Boats": "neighbours", "Fruits": "members"}  # type: ignore[attr-defined]
    assert result.candidates["Fruits"].words == ("apple", "banana", "plum", "grape")  # type: ignore[attr-defined]
