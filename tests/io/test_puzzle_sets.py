"""The puzzle app's document: ids, tiles, levels, themes and times as the app relies on them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from asyncpipe.errors import ConfigError
from asyncpipe.io.puzzle_sets import (
    category_in_a_row,
    creation_time,
    puzzle_sets_document,
    shuffled_tiles,
)
from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from asyncpipe.puzzle.assembly import Group, Puzzle
from asyncpipe.puzzle.scoring import PuzzleScore, score_puzzle

THEMES = {
    "Birds": ["sparrow", "eagle", "robin", "wren"],
    "Fruit": ["apple", "pear", "plum", "fig"],
    "Metals": ["iron", "zinc", "tin", "lead"],
    "Weather": ["rain", "snow", "fog", "hail"],
}


def puzzle(themes: dict[str, list[str]] = THEMES) -> Puzzle:
    return Puzzle(tuple(Group(theme, tuple(words), (0.5,) * 4) for theme, words in themes.items()))


def score(ease: tuple[float, ...] = (1.0, 4.0, 3.0, 2.0), difficulty: float = 0.3) -> PuzzleScore:
    """A real score whose ease is set: the levels come out (4, 1, 2, 3), never the positions."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, 16))
    words = np.repeat(centres, 4, axis=0) + 0.3 * rng.standard_normal((16, 16))
    measured = score_puzzle(words, centres, [f"w{n}" for n in range(16)])
    return replace(measured, group_ease=ease, difficulty=difficulty, ambiguous=False)


def document(count: int = 3, **kwargs: object) -> dict:
    puzzles = [puzzle()] * count
    return puzzle_sets_document(puzzles, [score()] * count, "daily-7", 42, **kwargs)  # type: ignore[arg-type]


def test_each_puzzle_id_is_the_set_name_and_its_number_and_equals_its_key() -> None:
    entries = document()["puzzleSets"]["daily-7"]["4x4"]

    assert list(entries) == ["daily-7_1", "daily-7_2", "daily-7_3"]
    for key, entry in entries.items():
        assert entry["id"] == key == f"{entry['setName']}_{entry['puzzleNumber']}"
        assert entry["gridSize"] == 4
    assert [entry["puzzleNumber"] for entry in entries.values()] == [1, 2, 3]


def test_the_index_lists_the_puzzles_sizes_and_count() -> None:
    index = document(metadata={"provider": "glove"})["setIndex"]["daily-7"]

    assert index["totalCount"] == 3
    assert index["status"] == "active"
    assert index["sizeCounts"] == {"4x4": 3}
    assert index["availableSizes"] == ["4x4"]
    assert index["puzzleIds"] == ["daily-7_1", "daily-7_2", "daily-7_3"]
    assert index["metadata"] == {"provider": "glove"}


def test_category_difficulty_is_the_measured_level_not_the_position() -> None:
    entry = document()["puzzleSets"]["daily-7"]["4x4"]["daily-7_1"]

    assert [category["difficulty"] for category in entry["categories"]] == [4, 1, 2, 3]
    assert entry["difficulty"] == score().puzzle_level == 1  # solver difficulty 0.3: easy


def test_theme_word_is_the_theme_and_similarity_its_theme_fit() -> None:
    the_score = score()
    entry = document()["puzzleSets"]["daily-7"]["4x4"]["daily-7_1"]

    assert [category["themeWord"] for category in entry["categories"]] == list(THEMES)
    assert [category["id"] for category in entry["categories"]] == [
        f"daily-7_1_cat_{n}" for n in range(4)
    ]
    assert [category["words"] for category in entry["categories"]] == list(THEMES.values())
    assert [category["similarity"] for category in entry["categories"]] == [
        round(fit, 6) for fit in the_score.theme_fit
    ]
    assert entry["metadata"]["avgSimilarity"] == round(float(np.mean(the_score.theme_fit)), 6)
    assert entry["metadata"]["qualityScore"] == 0.7


def test_the_tiles_are_the_categories_words_shuffled_the_same_way_each_time() -> None:
    first = shuffled_tiles(puzzle(), seed=42, number=1)

    assert sorted(first) == sorted(word for words in THEMES.values() for word in words)
    assert first != puzzle().words
    assert shuffled_tiles(puzzle(), seed=42, number=1) == first
    assert shuffled_tiles(puzzle(), seed=43, number=1) != first
    assert shuffled_tiles(puzzle(), seed=42, number=2) != first


def test_no_shuffle_leaves_a_category_in_a_row() -> None:
    groups = [frozenset(words) for words in THEMES.values()]
    # About 1 plain shuffle in 110 puts a category in a row: 2,000 grids meet that case often.
    for seed in range(20):
        for number in range(1, 101):
            tiles = shuffled_tiles(puzzle(), seed, number)
            assert category_in_a_row(tiles, groups, 4) is None, (seed, number, tiles)


def test_a_category_in_a_row_is_found_in_any_row_and_only_whole() -> None:
    groups = [frozenset(words) for words in THEMES.values()]
    mixed = ["sparrow", "apple", "iron", "rain"]
    fruit_in_row_2 = [*mixed, "fig", "plum", "apple", "pear", *mixed]

    assert category_in_a_row(fruit_in_row_2, groups, 4) == frozenset(THEMES["Fruit"])
    assert category_in_a_row(mixed * 3, groups, 4) is None
    # Four fruit across two rows are no row of fruit.
    assert (
        category_in_a_row(["a", "b", "fig", "plum", "apple", "pear", "c", "d"], groups, 4) is None
    )


def test_times_are_left_out_unless_given() -> None:
    plain = document()
    stamped = document(created_at=1_700_000_000_000)

    assert "createdAt" not in plain["puzzleSets"]["daily-7"]["4x4"]["daily-7_1"]
    assert "lastUpdated" not in plain["setIndex"]["daily-7"]
    assert stamped["puzzleSets"]["daily-7"]["4x4"]["daily-7_1"]["createdAt"] == 1_700_000_000_000
    assert stamped["setIndex"]["daily-7"]["lastUpdated"] == 1_700_000_000_000


def test_the_same_batch_gives_the_same_bytes() -> None:
    assert json.dumps(document()) == json.dumps(document())


def test_the_documents_it_writes_pass_the_check() -> None:
    assert validate_puzzle_sets(document()) == []
    assert validate_puzzle_sets(document(created_at=0)) == []
    assert validate_puzzle_sets(document(count=0)) == []


def test_creation_time_comes_from_the_flag_then_source_date_epoch_else_none() -> None:
    assert creation_time(None, {}) is None
    assert creation_time(None, {"SOURCE_DATE_EPOCH": ""}) is None
    assert creation_time(None, {"SOURCE_DATE_EPOCH": "1700000000"}) == 1_700_000_000_000
    assert creation_time("2023-11-14T22:13:20Z", {"SOURCE_DATE_EPOCH": "5"}) == 1_700_000_000_000
    assert creation_time("2023-11-14T23:13:20.123+01:00", {}) == 1_700_000_000_123
    assert creation_time("2023-11-14", {}) == 1_699_920_000_000  # no zone: UTC


@pytest.mark.parametrize(
    ("flag", "environment", "named"),
    [
        ("yesterday", {}, "--created-at 'yesterday'"),
        (None, {"SOURCE_DATE_EPOCH": "1.5e9"}, "SOURCE_DATE_EPOCH='1.5e9'"),
        (None, {"SOURCE_DATE_EPOCH": "-1"}, "SOURCE_DATE_EPOCH='-1'"),
    ],
)
def test_a_bad_time_is_a_config_error_naming_where_it_came_from(
    flag: str | None, environment: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match="^" + named.replace(".", r"\.")):
        creation_time(flag, environment)
