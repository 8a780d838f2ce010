"""Rank a theme's candidates by how close the embedding provider puts them to the theme.

Pure numpy, no I/O: the enhance stage (`asyncpipe.stages.embed`) calls it once a
theme and its candidates are embedded. The ranked list is longer than a group so
that assembly can step past a word another group of the same puzzle already holds.

Neighbours are ranked by their cosine to the theme. Members of a category are all
members already; they are ranked by typicality (`typicality`), so that a group
shows the members a player thinks of first (oak, pine, maple before yew).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asyncpipe.puzzle.vectors import norm_floor, unit, unit_rows
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


def typicality(theme_vector: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """How typical each member is of its category: the mean of its cosine to the theme
    and its cosine to the centroid of the other members.

    The theme alone is a weak anchor (the word "Trees" sits near "forest" and "leaves"),
    and the members alone drift towards their most common sub-kind; together they
    favour the members that are plainly of the category. A lone member is typical by
    its cosine to the theme only.
    """
    units = unit_rows(np.asarray(vectors, dtype=np.float64), np.float64)
    to_theme = units @ unit(np.asarray(theme_vector, dtype=np.float64), np.float64)
    if len(units) < 2:
        return to_theme
    others = units.sum(axis=0)[None, :] - units  # each row: the sum of the other members
    norms = np.maximum(np.linalg.norm(others, axis=1), norm_floor(np.float64))
    to_others = np.einsum("ij,ij->i", units, others) / norms
    return (to_theme + to_others) / 2.0


def rank_candidates(
    theme: str, words: Sequence[str], scores: np.ndarray, order_by: np.ndarray | None = None
) -> RankedTheme:
    """Order candidates by `order_by` (default: their score, the cosine to the theme);
    ties keep the candidate order. The ranked scores are always the cosines.

    Case and inflection variants (Dance, dances, dancing) collapse onto the
    highest ranked of them, so a group never holds two forms of one word.
    """
    key = scores if order_by is None else order_by
    order = np.lexsort((np.arange(len(words)), -key)).tolist()
    first_row: dict[str, int] = {}
    for row in order:
        first_row.setdefault(words[row], row)
    kept = distinct_by_variant(words[row] for row in order)
    rows = [first_row[word] for word in kept]
    return RankedTheme(theme, tuple(kept), tuple(float(scores[row]) for row in rows), tuple(rows))
