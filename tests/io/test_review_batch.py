"""The review page's values: the cosine matrix and the batch counts (its grid is the app's,
tested with puzzle_sets.json)."""

from __future__ import annotations

import numpy as np

from asyncpipe.io.review_batch import batch_figures, similarity_matrix
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure


def test_the_similarity_matrix_is_rounded_cosines_whatever_the_vector_lengths() -> None:
    vectors = np.array([[1.0, 0.0], [3.0, 3.0], [0.0, -2.0]], dtype=np.float32)
    matrix = similarity_matrix(vectors)
    assert matrix.tolist() == [[1.0, 0.71, 0.0], [0.71, 1.0, -0.71], [0.0, -0.71, 1.0]]
    assert not np.signbit(matrix[matrix == 0.0]).any()  # no -0.0, which would print so
    assert (matrix.dtype, matrix.flags.writeable) == (np.float64, False)


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
