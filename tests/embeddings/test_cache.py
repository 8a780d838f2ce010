"""The in-memory LRU of vectors, the cache's view of a text, and what namespaces a vector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from asyncpipe.embeddings.cache import (
    ENTRY_OVERHEAD_BYTES,
    LruVectorCache,
    Namespace,
    entry_bytes,
    normalise_text,
)

#: The bytes one entry of a test vector counts: 4 float32 values and the entry's overhead.
VECTOR_BYTES = 16 + ENTRY_OVERHEAD_BYTES


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(4).astype(np.float32)


def test_a_stored_vector_comes_back_unchanged() -> None:
    cache = LruVectorCache(4 * VECTOR_BYTES)
    stored = vector(1)

    cache.put("apple", stored)

    found = cache.get("apple")
    assert found is not None
    np.testing.assert_array_equal(found, stored)
    assert found.dtype == np.float32
    assert cache.get("pear") is None


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    cache = LruVectorCache(3 * VECTOR_BYTES)
    for number, text in enumerate(["a", "b", "c"]):
        cache.put(text, vector(number))

    assert cache.get("a") is not None  # "a" is now the most recent; "b" the least
    cache.put("d", vector(3))
    assert cache.get("b") is None
    assert [cache.get(text) is not None for text in ["a", "c", "d"]] == [True, True, True]

    cache.put("e", vector(4))  # the gets above left "a" as the least recent
    assert cache.get("a") is None
    assert cache.statistics().size == 3


def test_putting_an_existing_text_refreshes_it_without_evicting() -> None:
    cache = LruVectorCache(2 * VECTOR_BYTES)
    cache.put("a", vector(0))
    cache.put("b", vector(1))

    cache.put("a", vector(2))
    cache.put("c", vector(3))

    assert cache.get("b") is None
    found = cache.get("a")
    assert found is not None
    np.testing.assert_array_equal(found, vector(2))
    assert cache.statistics().evictions == 1


def test_a_cache_of_capacity_zero_stores_nothing() -> None:
    cache = LruVectorCache(0)

    cache.put("apple", vector(1))

    assert cache.statistics().size == 0
    assert cache.get("apple") is None
    statistics = cache.statistics()
    assert (statistics.size, statistics.evictions, statistics.misses) == (0, 0, 1)


def test_a_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LruVectorCache(-1)


def test_statistics_count_hits_misses_and_evictions() -> None:
    cache = LruVectorCache(2 * VECTOR_BYTES)
    cache.put("a", vector(0))
    cache.put("b", vector(1))
    cache.get("a")
    cache.get("a")
    cache.get("zzz")
    cache.put("c", vector(2))  # evicts b
    cache.put("d", vector(3))  # evicts a
    cache.get("b")

    statistics = cache.statistics()

    assert statistics.hits == 2
    assert statistics.misses == 2
    assert statistics.evictions == 2
    assert statistics.size == 2
    assert statistics.capacity_bytes == 2 * VECTOR_BYTES
    assert statistics.size_bytes == 2 * VECTOR_BYTES


def test_statistics_are_a_snapshot() -> None:
    cache = LruVectorCache(2 * VECTOR_BYTES)
    before = cache.statistics()

    cache.get("a")

    assert before.misses == 0
    assert cache.statistics().misses == 1


def test_statistics_are_frozen() -> None:
    statistics = LruVectorCache(2 * VECTOR_BYTES).statistics()

    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.hits = 5  # type: ignore[misc]


def test_normalise_text_composes_unicode_to_nfc() -> None:
    decomposed = "Cafe\u0301"  # e + combining acute accent
    composed = "Caf\u00e9"

    assert normalise_text(decomposed) == composed
    assert normalise_text(composed) == composed


def test_normalise_text_collapses_and_trims_whitespace() -> None:
    assert normalise_text("  Musical \t\n instruments  ") == "Musical instruments"
    assert normalise_text("a\u00a0b") == "a b"  # no-break space is whitespace too
    assert normalise_text("   ") == ""


def test_normalise_text_keeps_case() -> None:
    assert normalise_text("Apple") == "Apple"
    assert normalise_text("Apple") != normalise_text("apple")


def test_namespace_names_model_dimension_and_task() -> None:
    namespace = Namespace("gemini-embedding-001", 3072, "SEMANTIC_SIMILARITY")

    assert str(namespace) == "gemini-embedding-001|3072|SEMANTIC_SIMILARITY"


def test_namespaces_differ_when_model_dimension_or_task_differ() -> None:
    base = Namespace("gemini-embedding-001", 768, "SEMANTIC_SIMILARITY")
    variants = [
        Namespace("text-embedding-004", 768, "SEMANTIC_SIMILARITY"),
        Namespace("gemini-embedding-001", 3072, "SEMANTIC_SIMILARITY"),
        Namespace("gemini-embedding-001", 768, "RETRIEVAL_DOCUMENT"),
    ]

    names = {str(base), *(str(variant) for variant in variants)}

    assert len(names) == 4
    assert str(Namespace("gemini-embedding-001", 768, "SEMANTIC_SIMILARITY")) == str(base)


def test_a_namespace_is_frozen_and_hashable() -> None:
    namespace = Namespace("m", 8, "")

    with pytest.raises(AttributeError):
        namespace.model = "other"  # type: ignore[misc]
    assert {namespace, Namespace("m", 8, "")} == {namespace}


def test_the_bound_is_in_bytes_whatever_the_vectors_size() -> None:
    bound = 1000 + 2 * ENTRY_OVERHEAD_BYTES
    cache = LruVectorCache(bound)
    cache.put("small", np.zeros(50, dtype=np.float32))  # 200 bytes of values
    cache.put("large", np.zeros(200, dtype=np.float32))  # 800: the bound, with overheads
    assert cache.statistics().size == 2

    cache.put("more", np.zeros(50, dtype=np.float32))  # over: "small" goes first

    assert cache.get("small") is None
    assert cache.statistics().size_bytes == bound


def test_each_entry_counts_its_overhead_so_small_vectors_cannot_overrun_the_bound() -> None:
    values = 50 * 4
    cache = LruVectorCache(100 * values)
    for number in range(100):
        cache.put(f"text {number}", np.zeros(50, dtype=np.float32))

    statistics = cache.statistics()
    # The values alone would fit 100; with what each entry costs besides, fewer do.
    assert statistics.size == 100 * values // entry_bytes(np.zeros(50, dtype=np.float32))
    assert statistics.size < 100
    assert statistics.size_bytes <= statistics.capacity_bytes


def test_a_vector_larger_than_the_cache_is_not_kept() -> None:
    cache = LruVectorCache(100 + ENTRY_OVERHEAD_BYTES)
    cache.put("kept", np.zeros(10, dtype=np.float32))

    cache.put("huge", np.zeros(1000, dtype=np.float32))

    assert cache.get("huge") is None
    assert cache.get("kept") is not None


def test_an_entry_is_a_copy_so_a_view_does_not_keep_its_answer_alive() -> None:
    answer = np.ones((100, 8), dtype=np.float32)
    cache = LruVectorCache(10_000)

    cache.put("row", answer[3])
    answer[3] = 0.0

    found = cache.get("row")
    assert found is not None
    assert found.base is None
    np.testing.assert_array_equal(found, np.ones(8, dtype=np.float32))
