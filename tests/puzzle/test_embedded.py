"""`VectorRows`: shared rows that index like the matrix they would stack to."""

from __future__ import annotations

import numpy as np
import pytest

from asyncpipe.puzzle.embedded import VectorRows


def matrix() -> np.ndarray:
    return np.arange(12, dtype=np.float32).reshape(4, 3)


def test_rows_index_like_their_matrix() -> None:
    rows = VectorRows(list(matrix()), 3)

    assert rows.shape == (4, 3) and len(rows) == 4
    np.testing.assert_array_equal(rows[2], matrix()[2])
    np.testing.assert_array_equal(rows[np.int64(1)], matrix()[1])
    np.testing.assert_array_equal(rows[[3, 0, 3]], matrix()[[3, 0, 3]])
    np.testing.assert_array_equal(np.asarray(rows), matrix())
    assert np.asarray(rows, dtype=np.float64).dtype == np.float64


def test_the_rows_are_the_arrays_given_not_copies() -> None:
    shared = [np.ones(3, dtype=np.float32), np.zeros(3, dtype=np.float32)]
    one, other = VectorRows(shared, 3), VectorRows([shared[1]], 3)

    assert one[1] is other[0] is shared[1]
    assert one.rows == tuple(shared)


def test_picking_rows_gives_a_new_matrix_the_rows_do_not_see() -> None:
    rows = VectorRows.of(matrix())
    picked = rows[[0, 1]]
    picked[0, 0] = 99.0

    assert rows[0][0] == 0.0


def test_no_rows_stack_to_an_empty_matrix_of_the_dimension() -> None:
    rows = VectorRows([], 5)

    assert np.asarray(rows).shape == (0, 5)
    assert rows[[]].shape == (0, 5)


def test_rows_of_another_size_are_refused() -> None:
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        VectorRows([np.zeros(3), np.zeros(4)], 3)
    with pytest.raises(ValueError, match="2-D"):
        VectorRows.of(np.zeros(3))
