"""The value every later step shares: a theme embedded together with its candidates.

Its vectors are `VectorRows`, the embedding engine's own arrays, so the themes of
a batch hold each distinct vector once. Once its window of puzzles is made, a
theme is kept as a `ThemeRecord`: everything the reports need but the vectors.

Pure: the embedding stage (`asyncpipe.stages.embed`) builds these; assembly, scoring,
the quality checks and the output documents read them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from asyncpipe.puzzle.ranking import RankedTheme


class VectorRows:
    """Vectors held as one read-only 1-D array each, in order: rows that can be shared.

    A batch's themes share most of their candidates. Stacking each theme's vectors
    into its own matrix held every shared vector once per theme (at 3072
    dimensions, 12 KB each time); these rows are the very arrays the embedding
    engine's cache holds, so a vector is held once however many themes use it.

    Indexing works as on the matrix the rows would stack to: an int gives that
    row, a sequence of ints a new matrix of those rows; `np.asarray(rows)` is the
    whole matrix, new each time.
    """

    __slots__ = ("_dimension", "_rows")

    def __init__(self, rows: Sequence[np.ndarray], dimension: int) -> None:
        for row in rows:
            if row.shape != (dimension,):
                raise ValueError(f"expected rows of shape ({dimension},), got {row.shape}")
        self._rows = tuple(rows)
        self._dimension = dimension

    @classmethod
    def of(cls, matrix: ArrayLike) -> VectorRows:
        """The rows of a 2-D matrix (views of it: the matrix is kept alive by them)."""
        array = np.asarray(matrix)
        if array.ndim != 2:
            raise ValueError(f"expected a 2-D matrix (rows of vectors), got shape {array.shape}")
        return cls(list(array), array.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self._rows), self._dimension)

    @property
    def rows(self) -> tuple[np.ndarray, ...]:
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: Sequence[int]) -> np.ndarray: ...
    def __getitem__(self, index: int | Sequence[int]) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return self._rows[index]
        return self._stack([self._rows[position] for position in index])

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        matrix = self._stack(self._rows)
        return matrix if dtype is None else matrix.astype(dtype, copy=False)

    def _stack(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        if not rows:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack(rows)


@dataclass(frozen=True)
class EmbeddedTheme:
    """A theme's vector; its candidates' vectors and cosines, in candidate order; their ranking."""

    theme_vector: np.ndarray
    candidate_words: tuple[str, ...]
    candidate_vectors: VectorRows
    candidate_scores: np.ndarray
    ranked: RankedTheme

    @functools.cached_property
    def _rows(self) -> dict[str, int]:
        rows: dict[str, int] = {}
        for row, word in enumerate(self.candidate_words):
            rows.setdefault(word, row)
        return rows

    def row_of(self, word: str) -> int:
        """The row of a candidate word in `candidate_vectors` and `candidate_scores`."""
        return self._rows[word]

    @property
    def theme_vector_norm(self) -> float:
        return float(np.linalg.norm(self.theme_vector))

    @property
    def ranked_rows(self) -> np.ndarray:
        """The row of each ranked word in the candidates, best first (`ranked.source_rows`)."""
        return np.asarray(self.ranked.source_rows, dtype=np.int64)

    @property
    def ranked_scores(self) -> np.ndarray:
        """The cosines of the ranked words, best first (`ranked.scores`)."""
        return np.asarray(self.ranked.scores, dtype=np.float64)

    def record(self) -> ThemeRecord:
        """What is kept of the theme once its vectors are let go."""
        return ThemeRecord(
            self.candidate_words,
            self.candidate_scores,
            np.asarray(self.ranked.source_rows, dtype=np.int32),
            self.theme_vector_norm,
        )


@dataclass(frozen=True)
class ThemeRecord:
    """An embedded theme without its vectors: what the batch's reports read of a theme
    whose window is done (`asyncpipe.stages.windows`). A few hundred bytes, where the
    vectors were 50 x 12 KB at 3072 dimensions. Its ranking is kept as rows, not as the
    `RankedTheme` of Python floats, which was three times the rest."""

    candidate_words: tuple[str, ...]
    candidate_scores: np.ndarray
    #: As `EmbeddedTheme.ranked_rows`: the ranking, in a few bytes a word.
    ranked_rows: np.ndarray
    theme_vector_norm: float

    @property
    def ranked_scores(self) -> np.ndarray:
        # The ranking's scores are the cosines of its rows (`rank_candidates`).
        return np.asarray(self.candidate_scores, dtype=np.float64)[self.ranked_rows]
