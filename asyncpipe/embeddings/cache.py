"""The in-memory LRU of embedding vectors: the hot set of a run, bounded by entries.

Keys are `CacheKey`s: model, dimension, task type and the normalised text, so a
change of model or dimension never reuses old vectors. Values are float32 rows.
Single-threaded by design (the event loop owns it), so no locks.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Namespace:
    """What makes two vectors of the same text comparable: the same model, size and task."""

    model: str
    dimension: int
    task_type: str

    def __str__(self) -> str:
        return f"{self.model}|{self.dimension}|{self.task_type}"


def normalise_text(text: str) -> str:
    """The cache's view of a text: NFC, whitespace collapsed; case kept (models see case)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@dataclass
class CacheStatistics:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    size: int = 0
    capacity: int = 0


class LruVectorCache:
    """A bounded mapping from normalised text to vector, evicting the least recently used."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._statistics = CacheStatistics(capacity=capacity)

    def get(self, text: str) -> np.ndarray | None:
        vector = self._entries.get(text)
        if vector is None:
            self._statistics.misses += 1
            return None
        self._entries.move_to_end(text)
        self._statistics.hits += 1
        return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if self._capacity == 0:
            return
        self._entries[text] = vector
        self._entries.move_to_end(text)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
            self._statistics.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    def statistics(self) -> CacheStatistics:
        self._statistics.size = len(self._entries)
        return CacheStatistics(**vars(self._statistics))
