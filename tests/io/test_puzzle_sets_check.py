"""The check of the app's rules: a valid document passes; each rule broken once is named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from tests.io.test_puzzle_sets import document

SET = "daily-7"


def valid() -> dict[str, Any]:
    return document(count=3, created_at=1_700_000_000_000)


def first(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["puzzleSets"][SET]["4x4"][f"{SET}_1"]
    return entry


def renamed_key(doc: dict[str, Any]) -> None:
    entries = doc["puzzleSets"][SET]["4x4"]
    entries[f"{SET}_9"] = entries.pop(f"{SET}_1")


def gap_in_numbers(doc: dict[str, Any]) -> None:
    entries = doc["puzzleSets"][SET]["4x4"]
    entry = entries.pop(f"{SET}_3")
    entry.update(id=f"{SET}_4", puzzleNumber=4)
    entries[f"{SET}_4"] = entry
    doc["setIndex"][SET]["puzzleIds"][2] = f"{SET}_4"


def bad_set_name(doc: dict[str, Any]) -> None:
    for part in ("puzzleSets", "setIndex"):
        doc[part]["daily 7"] = doc[part].pop(SET)


def duplicate_ignoring_case(doc: dict[str, Any]) -> None:
    """A Fruit tile becomes "SPARROW", on the grid and in its category: the words still
    match the categories, but two tiles read the same to a player."""
    entry = first(doc)
    replaced = entry["categories"][1]["words"][0]
    twin = entry["categories"][0]["words"][0].upper()
    entry["categories"][1]["words"][0] = twin
    entry["words"] = [twin if word == replaced else word for word in entry["words"]]


def word_not_in_a_category(doc: dict[str, Any]) -> None:
    entry = first(doc)
    entry["words"][0] = "zebra"


def category_in_first_row(doc: dict[str, Any]) -> None:
    entry = first(doc)
    row = entry["categories"][2]["words"]
    entry["words"] = [*row, *(word for word in entry["words"] if word not in row)]


def level_twice(doc: dict[str, Any]) -> None:
    categories = first(doc)["categories"]
    categories[0]["difficulty"] = categories[1]["difficulty"]


def level_out_of_range(doc: dict[str, Any]) -> None:
    first(doc)["categories"][3]["difficulty"] = 5


def puzzle_level_out_of_range(doc: dict[str, Any]) -> None:
    first(doc)["difficulty"] = 7


def placeholder_theme(doc: dict[str, Any]) -> None:
    first(doc)["categories"][0]["themeWord"] = "Theme 1"


def wrong_category_id(doc: dict[str, Any]) -> None:
    first(doc)["categories"][1]["id"] = f"{SET}_1_cat_7"


def created_at_on_some_only(doc: dict[str, Any]) -> None:
    del first(doc)["createdAt"]


def created_at_not_a_timestamp(doc: dict[str, Any]) -> None:
    first(doc)["createdAt"] = "2025-01-31"


def last_updated_without_created_at(doc: dict[str, Any]) -> None:
    for entry in doc["puzzleSets"][SET]["4x4"].values():
        del entry["createdAt"]


def wrong_total(doc: dict[str, Any]) -> None:
    doc["setIndex"][SET]["totalCount"] = 80


def wrong_ids(doc: dict[str, Any]) -> None:
    doc["setIndex"][SET]["puzzleIds"].reverse()


def inactive(doc: dict[str, Any]) -> None:
    doc["setIndex"][SET]["status"] = "draft"


def wrong_size_counts(doc: dict[str, Any]) -> None:
    doc["setIndex"][SET]["sizeCounts"] = {"4x4": 2}


def wrong_grid_size(doc: dict[str, Any]) -> None:
    first(doc)["gridSize"] = 5


def missing_field(doc: dict[str, Any]) -> None:
    del first(doc)["categories"]


@pytest.mark.parametrize(
    ("breaks", "named"),
    [
        (renamed_key, f"puzzle {SET}_9: id '{SET}_1' differs from its key"),
        (gap_in_numbers, "puzzle numbers must run 1..3 without gaps or repeats, got 1, 2, 4"),
        (bad_set_name, "set name 'daily 7' does not match"),
        (duplicate_ignoring_case, f"puzzle {SET}_1: words repeats"),
        (word_not_in_a_category, "words are not the categories' words (not in a category: zebra"),
        (category_in_first_row, f"puzzle {SET}_1: row 1 is one whole category"),
        (level_twice, "do not use each of 1..4 once"),
        (level_out_of_range, "are not all levels 1..4"),
        (puzzle_level_out_of_range, f"puzzle {SET}_1: difficulty 7 is not a level 1..4"),
        (placeholder_theme, "category 0 has no theme name (themeWord 'Theme 1')"),
        (wrong_category_id, f"category 1 has id '{SET}_1_cat_7', not {SET}_1_cat_1"),
        (created_at_on_some_only, "createdAt is on some puzzles and not on others"),
        (created_at_not_a_timestamp, "createdAt '2025-01-31' is not a timestamp in ms"),
        (last_updated_without_created_at, "lastUpdated must be there exactly when"),
        (wrong_total, "totalCount 80 but 3 puzzles"),
        (wrong_ids, "puzzleIds are not the set's puzzles in order"),
        (inactive, "status 'draft' is not 'active'"),
        (wrong_size_counts, "sizeCounts {'4x4': 2}, the set holds {'4x4': 3}"),
        (wrong_grid_size, "16 words in rows of 5 do not make 4x4"),
        (missing_field, f"puzzle {SET}_1: missing categories"),
    ],
)
def test_each_broken_rule_is_named(breaks: Callable[[dict[str, Any]], None], named: str) -> None:
    doc = valid()
    assert validate_puzzle_sets(doc) == []

    breaks(doc)

    problems = validate_puzzle_sets(doc)
    assert any(named in problem for problem in problems), problems


def test_a_document_of_another_shape_is_one_problem() -> None:
    assert validate_puzzle_sets([]) == ["the document is not a JSON object"]
    assert validate_puzzle_sets({"puzzle_1": {}}) == [
        "the document needs the objects puzzleSets and setIndex"
    ]
