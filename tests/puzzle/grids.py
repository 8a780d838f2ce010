"""Hand-made grids with known answers, shared by the scorer's and the solver's tests."""

from __future__ import annotations

import numpy as np

Split = tuple[tuple[int, ...], ...]


#: Sixteen words with no two alike, in four groups of four.
PLAIN_WORDS = (
    "apple", "river", "tiger", "piano",
    "cloud", "hammer", "violet", "desk",
    "ocean", "pencil", "mango", "guitar",
    "zebra", "lamp", "forest", "spoon",
)  # fmt: skip


INTENDED: Split = ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15))


def clustered(
    centres: np.ndarray, noise: float, seed: int, size: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """`size` noisy copies of each centre (grid order), and the centres as themes, float32."""
    rng = np.random.default_rng(seed)
    words = np.repeat(centres, size, axis=0) + noise * rng.normal(
        size=(len(centres) * size, centres.shape[1])
    )
    return words.astype(np.float32), centres.astype(np.float32)


def random_centres(count: int, dimensions: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(seed).normal(size=(count, dimensions))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def cosines(vectors: np.ndarray) -> np.ndarray:
    unit = np.asarray(vectors, dtype=np.float64)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    return unit @ unit.T
