"""The value every later step shares: a theme embedded together with its candidates.

Pure: the embedding stage (`asyncpipe.stages.embed`) builds these; assembly, scoring,
the quality checks and the output documents read them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from asyncpipe.puzzle.ranking import RankedTheme


@dataclass(frozen=True)
class EmbeddedTheme:
    """A theme's vector; its candidates' vectors and cosines, in candidate order; their ranking."""

    theme_vector: np.ndarray
    candidate_words: tuple[str, ...]
    candidate_vectors: np.ndarray
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
