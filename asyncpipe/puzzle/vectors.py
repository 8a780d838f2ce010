"""Scaling embedding vectors to unit length: one way, one floor under the norm.

Pure numpy. Candidate search, ranking, scoring and the quality checks compare
vectors by cosine, and each used to divide by the norm with its own guard
against zero. They now share `norm_floor`: a norm is raised to at least the
smallest positive normal number of the dtype worked in, so an all-zero vector
scales to zero (its cosine with anything is 0) instead of to NaN, while every
real vector, whose norm is far above the floor, is divided by its exact norm.

The dtype is the caller's choice and part of the result: scoring works in
float64 for stable rounding, candidate search and the providers in float32 to
keep large matrices compact. Scaling the same rows in another dtype gives other
bytes, so each caller names its own.

Not here: which vectors to compare, and what a score means (`asyncpipe.puzzle.ranking`,
`asyncpipe.puzzle.scoring`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


def norm_floor(dtype: DTypeLike = np.float64) -> np.floating[Any]:
    """The least a norm is taken to be before dividing by it: `np.finfo(dtype).tiny`,
    as a scalar of that dtype (so dividing float32 rows by it keeps them float32)."""
    return np.finfo(dtype).tiny


def unit_rows(matrix: ArrayLike, dtype: DTypeLike = np.float64) -> np.ndarray:
    """Each row of `matrix` divided by its length, computed and returned in `dtype`.

    An all-zero row stays zero. A float32 matrix of provider vectors stays float32
    with `dtype=np.float32` (and is not copied before the division).
    """
    rows = np.asarray(matrix, dtype=dtype)
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-D matrix (rows of vectors), got shape {rows.shape}")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    result: np.ndarray = rows / np.maximum(norms, norm_floor(rows.dtype))
    return result


def unit(vector: ArrayLike, dtype: DTypeLike = np.float64) -> np.ndarray:
    """`vector` divided by its length, computed and returned in `dtype`; zero stays zero."""
    values = np.asarray(vector, dtype=dtype)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D vector, got shape {values.shape}")
    result: np.ndarray = values / max(float(np.linalg.norm(values)), norm_floor(values.dtype))
    return result
