"""unit_rows, unit and norm_floor: the one way vectors are scaled to unit length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asyncpipe.puzzle.vectors import norm_floor, unit, unit_rows


def test_unit_rows_scales_each_row_to_length_one_keeping_its_direction() -> None:
    matrix = np.array([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])

    result = unit_rows(matrix)

    np.testing.assert_allclose(
        result, [[0.6, 0.8], [0.0, -1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]], atol=1e-15
    )
    np.testing.assert_allclose(np.linalg.norm(result, axis=1), 1.0, atol=1e-15)


def test_an_all_zero_row_stays_zero_not_nan() -> None:
    matrix = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], dtype=np.float32)

    for dtype in (np.float64, np.float32):
        result = unit_rows(matrix, dtype)
        assert np.isfinite(result).all()
        assert (result[0] == 0.0).all()
        np.testing.assert_allclose(result[1], [1 / 3, 2 / 3, 2 / 3], rtol=1e-6)


def test_a_zero_vector_stays_zero_not_nan() -> None:
    result = unit(np.zeros(4))

    assert np.isfinite(result).all()
    assert (result == 0.0).all()


def test_unit_rows_works_in_float64_unless_told_otherwise() -> None:
    provider_vectors = np.ones((2, 3), dtype=np.float32)

    assert unit_rows(provider_vectors).dtype == np.float64
    assert unit(provider_vectors[0]).dtype == np.float64


def test_a_float32_matrix_stays_float32_when_asked() -> None:
    provider_vectors = np.arange(12, dtype=np.float32).reshape(3, 4) + 1

    assert unit_rows(provider_vectors, np.float32).dtype == np.float32
    assert unit(provider_vectors[0], np.float32).dtype == np.float32


def test_the_dtype_decides_the_bytes_as_dividing_by_the_norm_in_it_does() -> None:
    rows = np.random.default_rng(7).standard_normal((20, 50)).astype(np.float32)

    for dtype in (np.float32, np.float64):
        worked = rows.astype(dtype)
        by_hand = worked / np.linalg.norm(worked, axis=1, keepdims=True)
        assert unit_rows(rows, dtype).tobytes() == by_hand.tobytes()
        assert unit(rows[0], dtype).tobytes() == (worked[0] / np.linalg.norm(worked[0])).tobytes()


def test_the_floor_is_the_smallest_normal_number_of_the_dtype() -> None:
    assert norm_floor() == np.finfo(np.float64).tiny
    assert norm_floor(np.float32) == np.finfo(np.float32).tiny
    assert norm_floor(np.float32).dtype == np.float32


def test_a_very_short_vector_is_divided_by_its_own_norm_not_the_floor() -> None:
    tiny = np.array([[1e-100, 1e-100]])

    np.testing.assert_allclose(np.linalg.norm(unit_rows(tiny), axis=1), 1.0)


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2)])
def test_unit_rows_refuses_anything_but_a_matrix(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="2-D"):
        unit_rows(np.ones(shape))


def test_unit_refuses_anything_but_a_vector() -> None:
    with pytest.raises(ValueError, match="1-D"):
        unit(np.ones((2, 2)))


@pytest.mark.parametrize("dimension", [50, 768, 3072])
def test_each_row_is_scaled_by_its_own_norm_alone_bit_for_bit(dimension: int) -> None:
    # The word choice keeps unit rows and stacks them again: a row must scale to the
    # same floats in any matrix, alone or among others.
    rng = np.random.default_rng(dimension)
    matrix = rng.normal(size=(40, dimension)).astype(np.float32).astype(np.float64)
    whole = unit_rows(matrix)
    picked = rng.permutation(40)[:17]

    assert np.array_equal(unit_rows(matrix[picked]), whole[picked])
    assert all(np.array_equal(unit_rows(matrix[[row]])[0], whole[row]) for row in range(40))
