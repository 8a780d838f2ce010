"""Rank a theme's candidates by how close the embedding provider puts them to the theme.

Pure numpy, no I/O: the enhance stage (`asyncpipe.stages.embed`) calls it once a
theme and its candidates are embedded. The ranked list is longer than a group so
that assembly can step past a word another group of the same puzzle already holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asyncpipe.puzzle.vectors import norm_floor
from asyncpipe.puzzle.words import distinct_by_variant


@dataclass(frozen=True)
class RankedTheme:
    """A theme's candidates, closest first, one per variant family."""

    theme: str
    words: tuple[str, ...]
    scores: tuple[float, ...]
    #: Row of each ranked word in the candidate list it was ranked from.
    source_rows: tuple[int, ...]


def cosine_to(anchor: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `vectors` to `anchor`, as float64 for stable rounding."""
    anchor = np.asarray(anchor, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(anchor)
    # One division by the product of the norms, not a dot product of unit vectors:
    # the two round differently, and the scores written are this one's.
    return (vectors @ anchor) / np.maximum(norms, norm_floor(np.float64))


def rank_candidates(theme: str, words: Sequence[str], scores: np.ndarray) -> RankedTheme:
    """Order candidates by their score (cosine to the theme); ties keep the candidate order.

    Case and inflection variants (Dance, dances, dancing) collapse onto the
    closest of them, so a group never holds two forms of one word.
    """
    order = np.lexsort((np.arange(len(words)), -scores)).tolist()
    first_row: dict[str, int] = {}
    for row in order:
        first_row.setdefault(words[row], row)
    kept = distinct_by_variant(words[row] for row in order)
    rows = [first_row[word] for word in kept]
    return RankedTheme(theme, tuple(kept), tuple(float(scores[row]) for row in rows), tuple(rows))
