"""The review page's values: the player's grid, the cosine matrix, the batch counts."""

from __future__ import annotations

import numpy as np

from asyncpipe.io.review_batch import Tile, batch_figures, grid_order, similarity_matrix
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure


def _tiles(groups: int = 4, size: int = 4) -> list[Tile]:
    return [Tile(f"w{group}{index}", group) for group in range(groups) for index in range(size)]


def test_the_grid_is_the_same_for_the_same_seed_and_number_and_differs_otherwise() -> None:
    tiles = _tiles()
    assert grid_order(tiles, 4, 42, 1) == grid_order(tiles, 4, 42, 1)
    assert grid_order(tiles, 4, 42, 1) != grid_order(tiles, 4, 42, 2)
    assert grid_order(tiles, 4, 42, 1) != grid_order(tiles, 4, 43, 1)
    assert sorted(grid_order(tiles, 4, 42, 1), key=lambda tile: tile.word) == tiles


def test_no_row_of_the_grid_holds_a_whole_group() -> None:
    tiles = _tiles()
    for number in range(1, 500):
        grid = grid_order(tiles, 4, 7, number)
        rows = [grid[start : start + 4] for start in range(0, 16, 4)]
        assert all(len({tile.group for tile in row}) > 1 for row in rows), number


def test_the_similarity_matrix_is_rounded_cosines_whatever_the_vector_lengths() -> None:
    vectors = np.array([[1.0, 0.0], [3.0, 3.0], [0.0, -2.0]], dtype=np.float32)
    matrix = similarity_matrix(vectors)
    assert matrix == ((1.0, 0.71, 0.0), (0.71, 1.0, -0.71), (0.0, -0.71, 1.0))
    assert all(str(value) != "-0.0" for row in matrix for value in row)


def test_batch_figures_count_failed_kinds_and_theme_sources_most_frequent_first() -> None:
    failure = ThemeFailure(FailureKind.API_FAILED, "kept failing")
    dropped = ThemeFailure(FailureKind.DROPPED_BY_REBUILD, "least coherent")
    figures = batch_figures(
        7,
        10,
        2,
        {"A": failure, "B": dropped, "C": dropped},
        {"A": "members", "B": "neighbours", "C": "members"},
    )
    assert figures.failed_theme_kinds == (("dropped_by_rebuild", 2), ("api_failed", 1))
    assert figures.theme_sources == (("members", 2), ("neighbours", 1))
