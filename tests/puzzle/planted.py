"""A selection over planted categories: each category's words near an axis of its own.

The selection, assembly, decoy and wordplay tests share it, so that their grids are
built one way and differ only in the categories and options they plant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.selection import PuzzleSelection

DIMENSIONS = 8


def planted_selection(
    categories: Sequence[Category], *, seed: int, noise: float, **options: object
) -> PuzzleSelection:
    """A `PuzzleSelection` whose themes are the categories themselves (no neighbours).

    A word's vector is its first category's axis plus seeded Gaussian noise; a word in
    two categories keeps the first one's. `options` go to `PuzzleSelection` as they are.
    """
    rng = np.random.default_rng(seed)
    table: dict[str, np.ndarray] = {}
    for axis, category in enumerate(categories):
        for word in category.members:
            if word not in table:
                table[word] = np.eye(DIMENSIONS)[axis] + noise * rng.normal(size=DIMENSIONS)

    def vectors(theme: str, words: Sequence[str]) -> np.ndarray:
        return np.array([table[word] for word in words])

    return PuzzleSelection(
        Lexicon.of(categories),
        {category.name: category.name for category in categories},
        vectors,
        lambda *_: False,
        **options,  # type: ignore[arg-type]
    )
