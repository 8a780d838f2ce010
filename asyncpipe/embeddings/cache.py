"""The in-memory LRU of embedding vectors: the hot set of a run, bounded in bytes.

Bounded in bytes, not entries (`concurrency.embedding_cache_mb`): a vector of 3072
float32 values is 12 KB and one of 50 is 200 bytes, so a count of entries says
nothing about memory. Each entry is its own compact copy, so the bytes counted are
the bytes held (a row view would keep its whole answer alive): its values and what
holding them costs besides (`ENTRY_OVERHEAD_BYTES`, the array's header and the
entry in the ordered dict), which at 50 dimensions is most of it.

Keys are normalised texts (`normalise_text`); values are float32 rows. One cache
serves one engine, hence one provider, so the namespace (model, dimension, task
type) is the same for every entry and is not part of the key; the persistent
store, which outlives the run, keys its rows by `Namespace` as well. Also here:
`Namespace` itself and `normalise_text`, the two halves of what identifies a
vector. Single-threaded by design (the event loop owns it), so no locks.
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

#: What an entry costs besides its values: the ndarray's header and the ordered dict's
#: slot and link, measured with tracemalloc (178 bytes an entry, 10,000 entries).
#: Counted, so that a cache of 64 MB holds 64 MB: at 768 dimensions the values alone
#: left 6.5 MB of a full cache uncounted, at 50 dimensions more than the values.
ENTRY_OVERHEAD_BYTES = 180


def entry_bytes(vector: np.ndarray) -> int:
    """The bytes an entry holding `vector` (float32) counts against the cache's bound."""
    return vector.size * 4 + ENTRY_OVERHEAD_BYTES


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


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of an `LruVectorCache`'s figures, from `LruVectorCache.statistics()`."""

    #: Lookups that found their text.
    hits: int
    #: Lookups that did not.
    misses: int
    #: Entries dropped, least recently used first, to stay within `capacity_bytes`.
    evictions: int
    #: Entries held at the time of the snapshot.
    size: int
    #: Bytes those entries hold, values and per-entry overhead (`entry_bytes`).
    size_bytes: int
    #: The most bytes the cache holds, counted as `size_bytes` is (0: it holds nothing).
    capacity_bytes: int


class LruVectorCache:
    """A mapping from normalised text to vector, bounded in bytes, evicting the least
    recently used."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity must be >= 0 bytes, got {capacity_bytes}")
        self._capacity = capacity_bytes
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def __contains__(self, text: object) -> bool:
        """Whether `text` is held; a peek: neither a hit nor a miss, nor a use."""
        return text in self._entries

    def get(self, text: str) -> np.ndarray | None:
        vector = self._entries.get(text)
        if vector is None:
            self._misses += 1
            return None
        self._entries.move_to_end(text)
        self._hits += 1
        return vector

    def put(self, text: str, vector: np.ndarray) -> np.ndarray:
        """Hold a compact, read-only float32 copy of `vector` and return that copy.

        The engine hands the copy on to the themes waiting for the text, so a
        vector is held once however many themes use it, and the answer's
        batch matrix it came from (a row of which is a view) is freed at once.
        """
        kept = np.array(vector, dtype=np.float32, copy=True)
        kept.flags.writeable = False
        if entry_bytes(kept) > self._capacity:  # a capacity of 0 included
            return kept
        previous = self._entries.pop(text, None)
        if previous is not None:
            self._bytes -= entry_bytes(previous)
        self._entries[text] = kept
        self._bytes += entry_bytes(kept)
        while self._bytes > self._capacity:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= entry_bytes(evicted)
            self._evictions += 1
        return kept

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            size=len(self._entries),
            size_bytes=self._bytes,
            capacity_bytes=self._capacity,
        )
