"""EmbeddingEngine: batching, de-duplication, caches, retries and failures, with test providers.

Every test runs on a virtual clock (`tests.support.on_virtual_clock`): the
providers' delays, the linger, the backoff and the 429 pauses take no real
time, and the times the tests read are exact. The providers here are small classes of this file implementing the
EmbeddingProvider protocol: a deterministic one (each text's vector comes from
a hash of the text) that records every call, and variants that fail scripted
calls or any batch holding a given text. Stores are real SQLite files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import random
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.embeddings.cache import ENTRY_OVERHEAD_BYTES, LruVectorCache, Namespace
from asyncpipe.embeddings.daily_budget import BUDGET_FILE, DailyBudget
from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.embeddings.limits import RequestGate
from asyncpipe.embeddings.providers.base import ProviderInfo
from asyncpipe.embeddings.retry import RetryPolicy
from asyncpipe.embeddings.session import open_engine
from asyncpipe.embeddings.store import STORE_FILE, EmbeddingStore
from asyncpipe.embeddings.tokens import request_tokens
from asyncpipe.errors import (
    DailyQuotaSpent,
    EmbeddingError,
    EmbeddingStopped,
    FatalEmbeddingError,
    RetryableEmbeddingError,
    UnembeddableTextError,
)
from asyncpipe.settings.sections import Params
from tests.embeddings.stored_rows import stored_rows
from tests.support import on_virtual_clock

DIMENSION = 8
NAMESPACE = Namespace("hash-model", DIMENSION, "SEMANTIC_SIMILARITY")


def hashed_vector(text: str, dimension: int = DIMENSION) -> np.ndarray:
    """The vector HashProvider gives `text`: unit length, float32, the same in every run."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def hashed(texts: Sequence[str]) -> np.ndarray:
    return np.stack([hashed_vector(text) for text in texts])


class HashProvider:
    """Vectors from a hash of each text; records every call, when it came and what overlapped."""

    def __init__(
        self, delay: float = 0.0, slow: dict[str, float] | None = None, local: bool = False
    ) -> None:
        self._info = ProviderInfo(
            "hash", NAMESPACE.model, DIMENSION, NAMESPACE.task_type, local=local
        )
        self._delay = delay
        #: Extra seconds for any batch holding one of these texts.
        self._slow = slow or {}
        self.calls: list[list[str]] = []
        self.call_times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        call = len(self.calls)
        self.call_times.append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(
                self._delay + max((self._slow.get(t, 0.0) for t in texts), default=0)
            )
            self.fail(call, texts)
            return hashed(texts)
        finally:
            self.in_flight -= 1

    def fail(self, call: int, texts: Sequence[str]) -> None:
        """Raise to fail call number `call` (from 1); this provider never does."""

    async def aclose(self) -> None:
        self.closed = True

    def sent(self) -> list[str]:
        return [text for call in self.calls for text in call]


class ScriptedProvider(HashProvider):
    """Fails the calls numbered in `script` (1 is the first call) with a fresh error each."""

    def __init__(self, script: dict[int, Callable[[], EmbeddingError]], delay: float = 0.0) -> None:
        super().__init__(delay)
        self._script = script

    def fail(self, call: int, texts: Sequence[str]) -> None:
        if call in self._script:
            raise self._script[call]()


class FailsForText(HashProvider):
    """Fails every call whose batch holds `text`, with a fresh error each time."""

    def __init__(
        self,
        text: str,
        error: Callable[[], EmbeddingError],
        delay: float = 0.0,
    ) -> None:
        super().__init__(delay)
        self._text = text
        self._error = error

    def fail(self, call: int, texts: Sequence[str]) -> None:
        if self._text in texts:
            raise self._error()


class AlwaysFails(HashProvider):
    """Fails every call, as a provider with a bad key does."""

    def __init__(self, error: Callable[[], EmbeddingError]) -> None:
        super().__init__()
        self._error = error

    def fail(self, call: int, texts: Sequence[str]) -> None:
        raise self._error()


class DecodesLater(HashProvider):
    """Receives an answer in `delay` seconds, then decodes it in `decoding` more, as the
    REST transport does (`ReceivesBeforeDecoding`); the first `garbled` answers fail
    their decoding, as a malformed answer does."""

    def __init__(self, delay: float, decoding: float, garbled: int = 0) -> None:
        super().__init__(delay)
        self._decoding = decoding
        self._garbled = garbled
        self.decoding = 0
        self.max_decoding = 0
        self.held = 0  # answers received and not decoded yet
        self.max_held = 0

    async def receive(self, texts: Sequence[str]) -> _LateAnswer:
        vectors = await self.embed(texts)
        garbled = len(self.calls) <= self._garbled
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        return _LateAnswer(self, vectors, garbled)


@dataclasses.dataclass
class _LateAnswer:
    provider: DecodesLater
    matrix: np.ndarray
    garbled: bool

    async def vectors(self) -> np.ndarray:
        provider = self.provider
        provider.decoding += 1
        provider.max_decoding = max(provider.max_decoding, provider.decoding)
        try:
            await asyncio.sleep(provider._decoding)
        finally:
            provider.decoding -= 1
            provider.held -= 1
        if self.garbled:
            raise RetryableEmbeddingError("the answer is not JSON")
        return self.matrix


def unavailable() -> RetryableEmbeddingError:
    return RetryableEmbeddingError("503 the service is unavailable", status=503)


def bad_key() -> FatalEmbeddingError:
    return FatalEmbeddingError("401 the API key is not valid", status=401)


def make_engine(
    provider: HashProvider,
    *,
    batch_size: int = 20,
    max_concurrent: int = 4,
    requests_per_minute: int | None = None,
    max_retries: int = 3,
    base_delay: float = 0.001,
    cache_size: int = 10_000,  # vectors of DIMENSION values
    store: EmbeddingStore | None = None,
    linger: float = 0.005,
    min_interval: float = 0.0,
    tokens_per_minute: int | None = None,
    budget: DailyBudget | None = None,
    refused: dict[str, EmbeddingError] | None = None,
) -> EmbeddingEngine:
    return EmbeddingEngine(
        provider,
        RequestGate(max_concurrent, requests_per_minute, min_interval, tokens_per_minute),
        RetryPolicy(max_retries=max_retries, base_delay=base_delay),
        batch_size=batch_size,
        memory=LruVectorCache(cache_size * (DIMENSION * 4 + ENTRY_OVERHEAD_BYTES)),
        store=store,
        linger=linger,
        budget=budget,
        refused=refused,
    )


@asynccontextmanager
async def store_holding(folder: Path, texts: Sequence[str]) -> AsyncIterator[EmbeddingStore]:
    """An open store in `folder` holding the hashed vectors of `texts`, closed on the way out."""
    store = EmbeddingStore(folder / STORE_FILE, NAMESPACE)
    await store.open()
    try:
        await store.put_many(zip(texts, hashed(texts), strict=True))
        yield store
    finally:
        await store.close()


def theme_texts(themes: int, texts: int, shared: Sequence[str] = ()) -> list[list[str]]:
    """`themes` lists of `texts` texts of their own, each followed by the `shared` texts."""
    return [[f"theme {t} text {n}" for n in range(texts)] + list(shared) for t in range(themes)]


# Batching and de-duplication --------------------------------------------------------------


@on_virtual_clock
async def test_texts_of_concurrent_themes_are_coalesced_into_full_batches() -> None:
    provider = HashProvider(delay=0.005)
    themes = theme_texts(10, 7)

    async with make_engine(provider, batch_size=20) as engine:
        results = await asyncio.gather(*(engine.embed(texts) for texts in themes))

    # 70 distinct texts: 4 requests, not one (or more) per theme.
    assert len(provider.calls) == math.ceil(70 / 20)
    assert sorted(len(call) for call in provider.calls) == [10, 20, 20, 20]
    assert sorted(provider.sent()) == sorted(text for texts in themes for text in texts)
    for texts, result in zip(themes, results):
        np.testing.assert_array_equal(result, hashed(texts))
    statistics = engine.statistics()
    assert (statistics.requests, statistics.texts_requested, statistics.texts_asked) == (4, 70, 70)


@on_virtual_clock
async def test_texts_several_themes_share_are_sent_once() -> None:
    provider = HashProvider(delay=0.005)
    themes = theme_texts(10, 5, shared=["Animals", "Colours"])

    async with make_engine(provider, batch_size=20) as engine:
        results = await asyncio.gather(*(engine.embed(texts) for texts in themes))

    distinct = 10 * 5 + 2
    assert len(provider.calls) == math.ceil(distinct / 20)
    assert sorted(provider.sent()) == sorted({text for texts in themes for text in texts})
    assert engine.statistics().in_flight_hits == 9 * 2
    for texts, result in zip(themes, results):
        np.testing.assert_array_equal(result, hashed(texts))


@on_virtual_clock
async def test_a_text_requested_by_several_themes_at_the_same_moment_is_sent_once() -> None:
    provider = HashProvider(delay=0.02)

    async with make_engine(provider, batch_size=1) as engine:
        results = await asyncio.gather(*(engine.embed(["Birds"]) for _ in range(6)))

    assert provider.calls == [["Birds"]]
    for result in results:
        np.testing.assert_array_equal(result, hashed(["Birds"]))
    assert engine.statistics().in_flight_hits == 5


@on_virtual_clock
async def test_themes_sharing_a_text_share_one_compact_read_only_vector() -> None:
    provider = HashProvider(delay=0.005)

    async with make_engine(provider, batch_size=20) as engine:
        first, second = await asyncio.gather(
            engine.embed_rows(["Birds", "robin", "hawk"]), engine.embed_rows(["Fish", "robin"])
        )
        later = await engine.embed_rows(["robin"])  # from the memory cache

    assert first[1] is second[1] is later[0]
    for row in (*first, *second):
        # Not a view of the answer's matrix, which would keep the whole batch alive.
        assert row.base is None and row.flags.c_contiguous and not row.flags.writeable
        assert row.dtype == np.float32
    np.testing.assert_array_equal(np.stack(first), hashed(["Birds", "robin", "hawk"]))


@on_virtual_clock
async def test_vectors_from_the_store_are_shared_compact_copies_too(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(HashProvider(), store=store) as engine:
            await engine.embed(["Birds", "robin"])
    finally:
        await store.close()

    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(HashProvider(), store=store) as engine:
            first, second = await asyncio.gather(
                engine.embed_rows(["Birds", "robin"]), engine.embed_rows(["robin"])
            )
    finally:
        await store.close()

    assert first[1] is second[0]
    assert first[1].base is None and not first[1].flags.writeable
    np.testing.assert_array_equal(np.stack(first), hashed(["Birds", "robin"]))


@on_virtual_clock
async def test_every_request_holds_at_most_batch_size_texts() -> None:
    provider = HashProvider()
    themes = theme_texts(12, 9)

    async with make_engine(provider, batch_size=4) as engine:
        await asyncio.gather(*(engine.embed(texts) for texts in themes))

    assert max(len(call) for call in provider.calls) == 4
    assert len(provider.calls) == math.ceil(12 * 9 / 4)
    assert sorted(provider.sent()) == sorted(text for texts in themes for text in texts)


@on_virtual_clock
async def test_a_lone_theme_is_not_held_back_waiting_for_a_full_batch() -> None:
    provider = HashProvider()

    async with make_engine(provider, batch_size=100, linger=0.01) as engine:
        result = await asyncio.wait_for(engine.embed(["Weather", "rain"]), timeout=1.0)

    assert provider.calls == [["Weather", "rain"]]
    np.testing.assert_array_equal(result, hashed(["Weather", "rain"]))


@on_virtual_clock
async def test_texts_are_normalised_before_they_are_looked_up_or_sent() -> None:
    provider = HashProvider()

    async with make_engine(provider) as engine:
        result = await engine.embed(
            ["  Musical \t instruments ", "Musical instruments", "Cafe\u0301"]
        )

    assert sorted(provider.sent()) == sorted(["Musical instruments", "Caf\u00e9"])
    np.testing.assert_array_equal(
        result, hashed(["Musical instruments", "Musical instruments", "Caf\u00e9"])
    )


@on_virtual_clock
async def test_results_are_in_input_order_whichever_batch_finishes_first() -> None:
    # The batch holding "pear" is slow, so the later batch finishes first.
    provider = HashProvider(slow={"pear": 0.05})
    texts = ["pear", "apple", "fig", "kiwi", "apple", "pear"]

    async with make_engine(provider, batch_size=2) as engine:
        result = await engine.embed(texts)

    assert result.shape == (6, DIMENSION)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, hashed(texts))
    assert sorted(provider.sent()) == ["apple", "fig", "kiwi", "pear"]


@on_virtual_clock
async def test_no_texts_give_an_empty_matrix_and_no_request() -> None:
    provider = HashProvider()

    async with make_engine(provider) as engine:
        result = await engine.embed([])

    assert result.shape == (0, DIMENSION)
    assert result.dtype == np.float32
    assert provider.calls == []


@pytest.mark.parametrize("max_concurrent", [1, 3])
@on_virtual_clock
async def test_requests_in_flight_never_exceed_max_concurrent(max_concurrent: int) -> None:
    provider = HashProvider(delay=0.01)
    themes = theme_texts(20, 3)

    async with make_engine(provider, batch_size=2, max_concurrent=max_concurrent) as engine:
        await asyncio.gather(*(engine.embed(texts) for texts in themes))

    assert len(provider.calls) == 30
    assert provider.max_in_flight == max_concurrent
    assert engine.statistics().gate.max_in_flight == max_concurrent


# Caches ------------------------------------------------------------------------------------


@on_virtual_clock
async def test_texts_in_the_memory_cache_make_no_request() -> None:
    provider = HashProvider()

    async with make_engine(provider) as engine:
        first = await engine.embed(["apple", "pear"])
        calls = len(provider.calls)
        again = await engine.embed(["pear", "apple", "pear"])

    assert calls == 1
    assert len(provider.calls) == 1
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    assert engine.statistics().cache.hits == 2


@on_virtual_clock
async def test_texts_evicted_from_the_memory_cache_are_requested_again() -> None:
    provider = HashProvider()

    async with make_engine(provider, cache_size=2, batch_size=1) as engine:
        await engine.embed(["a", "b", "c"])
        await engine.embed(["a"])

    assert provider.sent().count("a") == 2
    assert engine.statistics().cache.evictions >= 1


@on_virtual_clock
async def test_vectors_are_committed_to_the_store_before_the_theme_resumes(
    tmp_path: Path,
) -> None:
    path = tmp_path / STORE_FILE
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(HashProvider(), store=store) as engine:
            await engine.embed(["apple", "pear", "fig"])
            # Another connection sees them: committed, not just cached.
            rows = stored_rows(path)
    finally:
        await store.close()

    assert rows == 3
    statistics = engine.statistics().store
    assert statistics is not None and statistics.written == 3


@on_virtual_clock
async def test_a_warm_store_answers_every_text_with_no_request(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    themes = theme_texts(5, 6)
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(HashProvider(), store=store) as engine:
            cold = await asyncio.gather(*(engine.embed(texts) for texts in themes))
    finally:
        await store.close()

    rerun = HashProvider()
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(rerun, store=store) as engine:
            warm = await asyncio.gather(*(engine.embed(texts) for texts in themes))
    finally:
        await store.close()

    assert rerun.calls == []
    statistics = engine.statistics()
    assert statistics.requests == 0
    assert statistics.store is not None and statistics.store.hits == 30
    assert statistics.texts_requested == 0
    assert statistics.latency is None  # no request: no latency to speak of
    for before, after in zip(cold, warm):
        np.testing.assert_array_equal(before, after)


@on_virtual_clock
async def test_a_store_of_another_model_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = EmbeddingStore(path, Namespace("older-model", DIMENSION, "SEMANTIC_SIMILARITY"))
    await store.open()
    await store.put_many([("apple", np.ones(DIMENSION, np.float32))])
    await store.close()

    provider = HashProvider()
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(provider, store=store) as engine:
            result = await engine.embed(["apple"])
    finally:
        await store.close()

    assert provider.calls == [["apple"]]
    np.testing.assert_array_equal(result, hashed(["apple"]))


# Retries and failures ----------------------------------------------------------------------


@on_virtual_clock
async def test_retryable_errors_are_retried_and_the_request_succeeds() -> None:
    provider = ScriptedProvider({1: unavailable, 2: unavailable})

    async with make_engine(provider, max_retries=3) as engine:
        result = await engine.embed(["apple", "pear"])

    np.testing.assert_array_equal(result, hashed(["apple", "pear"]))
    assert provider.calls == [["apple", "pear"]] * 3
    statistics = engine.statistics()
    assert (statistics.requests, statistics.retries, statistics.failed_requests) == (3, 2, 0)


@on_virtual_clock
async def test_retries_wait_the_policys_growing_delays() -> None:
    provider = ScriptedProvider({1: unavailable, 2: unavailable})
    policy = RetryPolicy(max_retries=3, base_delay=0.04)
    # The engine draws its jitter from random.Random(seed), seed 0 by default.
    rng = random.Random(0)
    waits = [policy.delay(1, unavailable(), rng), policy.delay(2, unavailable(), rng)]

    async with make_engine(provider, max_retries=3, base_delay=0.04) as engine:
        await engine.embed(["apple"])

    first, second, third = provider.call_times
    # Jittered between half and all of 0.04 s, then of 0.08 s: exactly the policy's draws.
    assert 0.02 <= waits[0] <= 0.04 and 0.04 <= waits[1] <= 0.08
    assert second - first == pytest.approx(waits[0], abs=1e-4)
    assert third - second == pytest.approx(waits[1], abs=1e-4)


@on_virtual_clock
async def test_a_429_retry_after_pauses_the_gate_for_every_theme() -> None:
    def quota() -> RetryableEmbeddingError:
        return RetryableEmbeddingError("429 quota exhausted", status=429, retry_after=0.2)

    provider = ScriptedProvider({1: quota})

    async with make_engine(provider, batch_size=2, max_concurrent=4) as engine:
        throttled = asyncio.create_task(engine.embed(["a1", "a2"]))
        while not provider.calls:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # the 429 has been answered; the gate is otherwise free
        other = await engine.embed(["b1"])
        await throttled

    answered_429, *after = provider.call_times
    assert sorted(provider.calls[1:]) == [["a1", "a2"], ["b1"]]
    # Neither the other theme nor the retry goes out before the pause ends: the first
    # at its end, the second after the spacing the 429 widened (twice the 50 ms floor).
    assert after[0] == pytest.approx(answered_429 + 0.2, abs=1e-3)
    assert after[1] == pytest.approx(after[0] + 0.1, abs=1e-3)
    np.testing.assert_array_equal(other, hashed(["b1"]))
    np.testing.assert_array_equal(throttled.result(), hashed(["a1", "a2"]))
    statistics = engine.statistics()
    assert statistics.gate.throttled == 1
    assert statistics.retries == 1
    assert statistics.gate.pause_seconds == pytest.approx(0.2)
    figures = statistics.to_json()
    assert (figures["throttled_429"], figures["throttle_pause_seconds"]) == (1, 0.2)


@on_virtual_clock
async def test_after_max_retries_only_the_themes_needing_the_batch_fail() -> None:
    provider = FailsForText("bad", unavailable)

    async with make_engine(provider, batch_size=3, max_retries=2) as engine:
        outcomes = await asyncio.gather(
            engine.embed(["a1", "a2", "bad"]),  # one full batch: a1 a2 bad
            engine.embed(["b1", "b2", "b3"]),  # another
            engine.embed(["c1", "a2"]),  # waits on a2 of the failing batch
            return_exceptions=True,
        )
        later = await engine.embed(["a1"])  # a failure is not remembered as a result

    first, second, third = outcomes
    assert isinstance(first, RetryableEmbeddingError) and first.status == 503
    assert isinstance(third, RetryableEmbeddingError) and third.status == 503
    np.testing.assert_array_equal(second, hashed(["b1", "b2", "b3"]))
    np.testing.assert_array_equal(later, hashed(["a1"]))
    assert sum("bad" in call for call in provider.calls) == 1 + 2
    statistics = engine.statistics()
    assert (statistics.retries, statistics.failed_requests) == (2, 1)


@on_virtual_clock
async def test_a_fatal_error_reaches_every_caller_and_is_not_retried() -> None:
    provider = AlwaysFails(bad_key)

    async with make_engine(provider, batch_size=4, max_concurrent=1, max_retries=5) as engine:
        outcomes = await asyncio.gather(
            *(engine.embed(texts) for texts in theme_texts(3, 3)), return_exceptions=True
        )
        later = await asyncio.gather(engine.embed(["after"]), return_exceptions=True)

    assert all(isinstance(outcome, FatalEmbeddingError) for outcome in outcomes), outcomes
    # One request, no retry: the batches queued behind it are never sent, nor is later work.
    assert len(provider.calls) == 1
    assert isinstance(later[0], FatalEmbeddingError)
    statistics = engine.statistics()
    assert (statistics.retries, statistics.failed_requests) == (0, 1)


@on_virtual_clock
async def test_a_fatal_error_also_fails_themes_waiting_on_other_batches() -> None:
    # The engine's contract: a fatal error fails every waiting theme, so the run stops,
    # unlike a retryable one, which fails only the themes that needed its batch.
    provider = FailsForText("boom", bad_key, delay=0.02)

    async with make_engine(provider, batch_size=2, max_concurrent=1) as engine:
        outcomes = await asyncio.gather(
            engine.embed(["boom", "a1"]),
            engine.embed(["b1", "b2"]),  # queued behind the failing request
            engine.embed(["c1", "c2"]),
            return_exceptions=True,
        )

    assert isinstance(outcomes[0], FatalEmbeddingError)
    assert [type(outcome).__name__ for outcome in outcomes[1:]] == ["FatalEmbeddingError"] * 2


@on_virtual_clock
async def test_an_unembeddable_text_fails_only_the_themes_that_asked_for_it() -> None:
    def unembeddable() -> UnembeddableTextError:
        return UnembeddableTextError("no word of 'Zzqxv' is in the index")

    provider = FailsForText("Zzqxv", unembeddable)

    async with make_engine(provider, batch_size=10, max_retries=3) as engine:
        outcomes = await asyncio.gather(
            engine.embed(["apple", "Zzqxv"]),
            engine.embed(["pear", "fig"]),
            engine.embed(["Zzqxv"]),
            engine.embed(["apple"]),
            return_exceptions=True,
        )
        calls_after_failure = len(provider.calls)
        again = await engine.embed(["apple", "pear"])

    assert isinstance(outcomes[0], UnembeddableTextError)
    assert isinstance(outcomes[2], UnembeddableTextError)
    np.testing.assert_array_equal(outcomes[1], hashed(["pear", "fig"]))
    np.testing.assert_array_equal(outcomes[3], hashed(["apple"]))
    # One mixed batch, then each of its texts alone; the bad one is not retried.
    assert provider.calls[0] == ["apple", "Zzqxv", "pear", "fig"]
    assert sorted(provider.calls[1:]) == [["Zzqxv"], ["apple"], ["fig"], ["pear"]]
    assert engine.statistics().retries == 0
    # The texts re-sent alone were cached like any other.
    assert len(provider.calls) == calls_after_failure
    np.testing.assert_array_equal(again, hashed(["apple", "pear"]))


@on_virtual_clock
async def test_refused_texts_fail_their_themes_without_a_request(tmp_path: Path) -> None:
    # What the Batch API jobs before the run refused (or failed to embed) is never sent:
    # the themes asking for it get its error, the others their vectors, from the store.
    refused: dict[str, EmbeddingError] = {
        "Zzqxv": UnembeddableTextError("the Batch API refused it (code 3: bad text)"),
        "lost": RetryableEmbeddingError("its batch jobs failed twice", status=None),
    }
    provider = HashProvider()
    async with store_holding(tmp_path, ["apple", "pear"]) as store:
        async with make_engine(provider, store=store, refused=refused) as engine:
            engine.plan(["apple", "Zzqxv", "pear", "lost"])
            outcomes = await asyncio.gather(
                engine.embed(["apple", "Zzqxv"]),
                engine.embed(["pear"]),
                engine.embed(["lost", "pear"]),
                engine.embed([" Zzqxv "]),  # the same key, once normalised
                return_exceptions=True,
            )

    assert provider.calls == []
    assert isinstance(outcomes[0], UnembeddableTextError)
    assert "code 3" in str(outcomes[0])
    np.testing.assert_array_equal(outcomes[1], hashed(["pear"]))
    assert type(outcomes[2]) is RetryableEmbeddingError
    assert isinstance(outcomes[3], UnembeddableTextError)


@on_virtual_clock
async def test_a_theme_cancelled_while_waiting_does_not_cancel_others_waiting_for_its_text() -> (
    None
):
    provider = HashProvider(delay=0.05)

    async with make_engine(provider, batch_size=10) as engine:
        cancelled = asyncio.create_task(engine.embed(["Birds", "sparrow"]))
        await asyncio.sleep(0)  # it has claimed both texts
        waiting = asyncio.create_task(engine.embed(["Birds"]))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        result = await asyncio.wait_for(asyncio.shield(waiting), timeout=1.0)

    assert cancelled.cancelled()
    np.testing.assert_array_equal(result, hashed(["Birds"]))


@on_virtual_clock
async def test_embedding_outside_async_with_engine_is_an_error_not_a_hang() -> None:
    engine = make_engine(HashProvider(), batch_size=10)

    with pytest.raises(RuntimeError, match="async with"):
        await asyncio.wait_for(engine.embed(["apple"]), timeout=1.0)


@on_virtual_clock
async def test_a_full_batch_outside_async_with_engine_is_an_error() -> None:
    engine = make_engine(HashProvider(), batch_size=2)

    with pytest.raises(RuntimeError, match="async with"):
        await asyncio.wait_for(engine.embed(["apple", "pear"]), timeout=1.0)


# Statistics --------------------------------------------------------------------------------

#: The keys of `EngineStatistics.to_json()` for an engine without a store that sent requests.
FIGURE_KEYS = {
    "requests",
    "texts_requested",
    "texts_asked",
    "texts_prefetched",
    "cache_hits_memory",
    "cache_hits_disk",
    "in_flight_dedup_hits",
    "retries",
    "throttled_429",
    "failed_requests",
    "estimated_tokens",
    "latency_p50_seconds",
    "latency_p95_seconds",
    "max_requests_in_flight",
    "slot_wait_seconds",
    "limiter_wait_seconds",
    "throttle_pause_seconds",
    "memory_cache_size",
    "memory_cache_mb",
    "memory_cache_evictions",
}
LATENCY_KEYS = {"latency_p50_seconds", "latency_p95_seconds"}
STORE_KEYS = {"store_path", "store_written", "store_corrupt_rows"}


@on_virtual_clock
async def test_statistics_gather_each_pieces_figures_counted_once() -> None:
    provider = ScriptedProvider({1: unavailable}, delay=0.002)
    texts = [f"text {n}" for n in range(10)]

    async with make_engine(provider, batch_size=5, cache_size=9) as engine:
        await engine.embed(texts)  # two batches, the first tried twice
        await engine.embed(texts)  # nine in memory, one evicted: one more request

    statistics = engine.statistics()
    assert (statistics.requests, statistics.texts_requested, statistics.texts_asked) == (4, 16, 20)
    assert (statistics.retries, statistics.failed_requests) == (1, 0)
    assert (statistics.cache.hits, statistics.cache.size, statistics.cache.evictions) == (9, 9, 2)
    assert statistics.cache.capacity_bytes == 9 * (DIMENSION * 4 + ENTRY_OVERHEAD_BYTES)
    assert statistics.store is None
    assert statistics.gate.requests_started == 4
    assert statistics.gate.max_in_flight >= 1
    # Every request took the provider's 2 ms, on the virtual clock: exactly that.
    assert statistics.latency is not None
    assert statistics.latency.p50_seconds == statistics.latency.p95_seconds == 0.002


@on_virtual_clock
async def test_to_json_has_the_metadata_keys_and_reads_each_figure_from_its_piece() -> None:
    provider = ScriptedProvider({1: unavailable}, delay=0.002)
    texts = [f"text {n}" for n in range(10)]

    async with make_engine(provider, batch_size=5, cache_size=9) as engine:
        await engine.embed(texts)
        await engine.embed(texts)

    statistics = engine.statistics()
    figures = statistics.to_json()
    assert set(figures) == FIGURE_KEYS
    assert figures["requests"] == 4
    assert figures["texts_requested"] == 16
    assert figures["texts_asked"] == 20
    assert figures["cache_hits_memory"] == statistics.cache.hits == 9
    assert figures["cache_hits_disk"] == 0  # no store: nothing came from disk
    assert figures["retries"] == 1
    assert figures["throttled_429"] == statistics.gate.throttled == 0
    assert figures["failed_requests"] == 0
    assert figures["memory_cache_size"] == 9
    assert figures["memory_cache_evictions"] == 2
    assert figures["max_requests_in_flight"] == statistics.gate.max_in_flight
    assert figures["latency_p50_seconds"] == figures["latency_p95_seconds"] == 0.002


@on_virtual_clock
async def test_figures_that_do_not_exist_are_left_out_not_none() -> None:
    async with make_engine(HashProvider()) as engine:
        before = engine.statistics()
        await engine.embed([])

    assert before.latency is None
    figures = before.to_json()
    assert set(figures) == FIGURE_KEYS - LATENCY_KEYS
    assert None not in figures.values()
    assert engine.statistics().latency is None  # an empty call sends nothing


@on_virtual_clock
async def test_statistics_are_a_frozen_snapshot_not_a_live_view() -> None:
    async with make_engine(HashProvider()) as engine:
        before = engine.statistics()
        await engine.embed(["apple"])

    assert (before.requests, before.texts_asked, before.cache.misses) == (0, 0, 0)
    after = engine.statistics()
    assert (after.requests, after.texts_asked, after.cache.misses) == (1, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.requests = 7  # type: ignore[misc]


@on_virtual_clock
async def test_statistics_with_a_store_name_it_and_count_its_writes(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / STORE_FILE, NAMESPACE)
    await store.open()
    try:
        async with make_engine(HashProvider(), store=store) as engine:
            await engine.embed(["apple", "pear"])
    finally:
        await store.close()

    statistics = engine.statistics()
    assert statistics.store is not None
    assert (statistics.store.written, statistics.store.hits, statistics.store.misses) == (2, 0, 2)
    figures = statistics.to_json()
    assert set(figures) == FIGURE_KEYS | STORE_KEYS
    assert figures["store_path"] == str(tmp_path / STORE_FILE)
    assert figures["store_written"] == 2
    assert figures["store_corrupt_rows"] == 0


@on_virtual_clock
async def test_corrupt_rows_of_the_store_are_reported(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    await store.put_many([("apple", hashed_vector("apple")), ("pear", hashed_vector("pear"))])
    await store.close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE vectors SET vector = ? WHERE text = 'pear'", [b"\x00" * 5])
    connection.close()

    provider = HashProvider()
    store = EmbeddingStore(path, NAMESPACE)
    await store.open()
    try:
        async with make_engine(provider, store=store) as engine:
            result = await engine.embed(["apple", "pear"])
    finally:
        await store.close()

    assert provider.calls == [["pear"]]  # the corrupt row is embedded again
    np.testing.assert_array_equal(result, hashed(["apple", "pear"]))
    figures = engine.statistics().to_json()
    assert (figures["cache_hits_disk"], figures["store_corrupt_rows"]) == (1, 1)


# The session: how params.yaml joins the pieces -------------------------------------------


@on_virtual_clock
async def test_open_engine_gives_a_remote_provider_a_store_and_closes_everything(
    tmp_path: Path,
) -> None:
    provider = HashProvider()

    async with open_engine(provider, Params(), tmp_path) as engine:
        await engine.embed(["apple", "pear"])

    assert provider.closed
    statistics = engine.statistics().store
    assert statistics is not None and statistics.path == tmp_path / STORE_FILE
    rerun = HashProvider()
    async with open_engine(rerun, Params(), tmp_path) as engine:
        result = await engine.embed(["pear", "apple"])
    assert rerun.calls == []
    np.testing.assert_array_equal(result, hashed(["pear", "apple"]))


@on_virtual_clock
async def test_open_engine_gives_a_local_provider_no_store(tmp_path: Path) -> None:
    provider = HashProvider(local=True)

    async with open_engine(provider, Params(), tmp_path) as engine:
        await engine.embed(["apple"])

    assert provider.closed
    assert engine.statistics().store is None
    assert "store_path" not in engine.statistics().to_json()
    assert not (tmp_path / STORE_FILE).exists()


# Stopping after a signal -------------------------------------------------------------------


@on_virtual_clock
async def test_stop_lets_requests_in_flight_finish_and_store_but_sends_nothing_new(
    tmp_path: Path,
) -> None:
    provider = HashProvider(delay=0.2)
    store = EmbeddingStore(tmp_path / STORE_FILE, NAMESPACE)
    await store.open()
    try:
        # One slot: the first batch goes out, the second waits for the slot.
        async with make_engine(provider, batch_size=2, max_concurrent=1, store=store) as engine:
            first = asyncio.ensure_future(engine.embed(["a", "b"]))
            second = asyncio.ensure_future(engine.embed(["c", "d"]))
            while not provider.calls:
                await asyncio.sleep(0.01)
            engine.stop()
            results = await asyncio.gather(first, second, return_exceptions=True)
            with pytest.raises(EmbeddingStopped):
                await engine.embed(["e"])
    finally:
        await store.close()

    np.testing.assert_array_equal(results[0], hashed(["a", "b"]))
    assert isinstance(results[1], EmbeddingStopped)
    assert provider.calls == [["a", "b"]]
    assert stored_rows(tmp_path / STORE_FILE) == 2


@on_virtual_clock
async def test_stop_gives_up_pending_texts_and_retries() -> None:
    provider = ScriptedProvider({1: unavailable}, delay=0.05)
    async with make_engine(provider, batch_size=10, base_delay=0.6, linger=10.0) as engine:
        retried = asyncio.ensure_future(engine.embed([f"r{n}" for n in range(10)]))
        pending = asyncio.ensure_future(engine.embed(["p"]))  # waits out a long linger
        while not provider.calls:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the first call failed; its retry is sleeping
        engine.stop()
        results = await asyncio.gather(retried, pending, return_exceptions=True)

    assert [type(result) for result in results] == [EmbeddingStopped, EmbeddingStopped]
    assert len(provider.calls) == 1  # neither the retry nor the pending text went out


@on_virtual_clock
async def test_abandon_cancels_requests_in_flight_and_frees_their_themes() -> None:
    provider = HashProvider(delay=30.0)
    async with make_engine(provider) as engine:
        waiting = asyncio.ensure_future(engine.embed(["slow"]))
        while not provider.calls:
            await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        engine.abandon()
        outcome = await asyncio.gather(waiting, return_exceptions=True)
    elapsed = asyncio.get_running_loop().time() - started

    assert isinstance(outcome[0], EmbeddingStopped)
    assert provider.in_flight == 0  # the request itself was cancelled, not waited for
    assert elapsed < 5.0


# Tokens per minute, and a spent day ----------------------------------------------------------


def june_first() -> datetime:
    return datetime(2025, 6, 1, 19, tzinfo=UTC)  # noon, Pacific time


@on_virtual_clock
async def test_a_batch_with_more_tokens_than_one_request_may_carry_goes_out_in_parts() -> None:
    provider = HashProvider()
    texts = [f"word{n:02d}" for n in range(20)]  # 6 bytes: 2 tokens each, 40 in all
    # 300 tokens a minute: at most 30 in one request, so 15 texts.
    async with make_engine(provider, batch_size=20, tokens_per_minute=300) as engine:
        vectors = await engine.embed(texts)

    np.testing.assert_array_equal(vectors, hashed(texts))
    assert [len(call) for call in provider.calls] == [15, 5]
    assert all(request_tokens(call) <= 30 for call in provider.calls)
    assert engine.statistics().gate.tokens_started == 40


@on_virtual_clock
async def test_a_text_too_long_for_any_request_fails_only_the_themes_that_asked_for_it() -> None:
    provider = HashProvider()
    long_text = "x" * 200  # 50 tokens, above the 30 one request may carry
    async with make_engine(provider, batch_size=20, tokens_per_minute=300) as engine:
        results = await asyncio.gather(
            engine.embed(["apple", long_text]), engine.embed(["pear"]), return_exceptions=True
        )

    assert isinstance(results[0], UnembeddableTextError)
    assert "gemini.tokens_per_minute = 300" in str(results[0])
    np.testing.assert_array_equal(results[1], hashed(["pear"]))
    assert long_text not in provider.sent()


@on_virtual_clock
async def test_a_spent_budget_stops_the_engine_as_a_signal_does(tmp_path: Path) -> None:
    provider = HashProvider(delay=0.1)
    budget = DailyBudget(tmp_path / BUDGET_FILE, 3, now=june_first)
    async with make_engine(provider, batch_size=2, max_concurrent=1, budget=budget) as engine:
        themes = [[f"t{n}a", f"t{n}b"] for n in range(6)]
        results = await asyncio.gather(
            *(engine.embed(texts) for texts in themes), return_exceptions=True
        )
        with pytest.raises(EmbeddingStopped):
            await engine.embed(["later"])

    assert len(provider.calls) == 3  # the budget, not one request more
    answered = [result for result in results if isinstance(result, np.ndarray)]
    assert len(answered) == 3
    assert all(isinstance(result, EmbeddingStopped) for result in results[3:])
    assert engine.stopped
    assert isinstance(engine.quota_spent, DailyQuotaSpent)
    assert "gemini.requests_per_day is 3" in str(engine.quota_spent)


@on_virtual_clock
async def test_a_per_day_429_is_not_retried_and_spends_the_rest_of_the_budget(
    tmp_path: Path,
) -> None:
    def day_spent() -> DailyQuotaSpent:
        return DailyQuotaSpent("429 RESOURCE_EXHAUSTED (quota ...PerDay...)", status=429)

    provider = ScriptedProvider({2: day_spent})
    budget = DailyBudget(tmp_path / BUDGET_FILE, 100, now=june_first)
    async with make_engine(
        provider, batch_size=2, max_concurrent=1, budget=budget, max_retries=5
    ) as engine:
        results = await asyncio.gather(
            *(engine.embed([f"t{n}a", f"t{n}b"]) for n in range(4)), return_exceptions=True
        )

    assert len(provider.calls) == 2  # the 429 came back; nothing was sent after it
    assert engine.statistics().retries == 0
    assert isinstance(results[0], np.ndarray)
    assert isinstance(results[1], DailyQuotaSpent)
    assert all(type(result) is EmbeddingStopped for result in results[2:])
    assert isinstance(engine.quota_spent, DailyQuotaSpent)
    assert engine.quota_spent.status == 429
    # No later run today sends a request: the server's count is the one that matters.
    with pytest.raises(DailyQuotaSpent):
        DailyBudget(tmp_path / BUDGET_FILE, 100, now=june_first).take()


@on_virtual_clock
async def test_open_engine_keeps_a_daily_budget_beside_the_store_only_for_a_remote_provider(
    tmp_path: Path,
) -> None:
    params = Params.model_validate({"gemini": {"requests_per_day": 50}})
    async with open_engine(HashProvider(), params, tmp_path / "remote") as engine:
        await engine.embed(["apple", "pear"])
    async with open_engine(HashProvider(local=True), params, tmp_path / "local") as engine:
        await engine.embed(["apple", "pear"])

    budget = json.loads((tmp_path / "remote" / BUDGET_FILE).read_text(encoding="utf-8"))
    assert budget["requests"] == 1  # the exact count, written as the engine closed
    assert (tmp_path / "remote" / STORE_FILE).exists()
    assert not (tmp_path / "local" / BUDGET_FILE).exists()


# ---- decoding outside the request slot ---------------------------------------------------


@on_virtual_clock
async def test_the_next_request_goes_out_while_an_answer_is_decoded() -> None:
    provider = DecodesLater(delay=0.3, decoding=0.1)
    texts = [f"text {n}" for n in range(40)]
    loop = asyncio.get_running_loop()

    async with make_engine(provider, batch_size=10, max_concurrent=1) as engine:
        started = loop.time()
        vectors = await engine.embed(texts)
        finished = loop.time()

    # One slot: each request follows the last one's answer, not its decoding.
    assert [round(t - started, 3) for t in provider.call_times] == [0.0, 0.3, 0.6, 0.9]
    assert finished - started == pytest.approx(4 * 0.3 + 0.1, abs=1e-3)
    np.testing.assert_array_equal(vectors, hashed(texts))
    # The latency is the request's alone.
    latency = engine.statistics().latency
    assert latency is not None and latency.p95_seconds == pytest.approx(0.3, abs=1e-3)


@on_virtual_clock
async def test_answers_waiting_to_be_decoded_are_as_many_as_the_slots_at_most() -> None:
    provider = DecodesLater(delay=0.01, decoding=1.0)
    texts = [f"text {n}" for n in range(200)]

    async with make_engine(provider, batch_size=10, max_concurrent=2) as engine:
        await engine.embed(texts)

    assert provider.max_decoding == 2
    assert len(provider.calls) == 20


@on_virtual_clock
async def test_a_slow_decoding_holds_back_the_next_requests() -> None:
    # Answers are megabytes at 3072 dimensions: while every decoding permit is taken, a
    # received answer keeps its request slot, so no more answers pile up than slots twice.
    provider = DecodesLater(delay=0.01, decoding=1.0)
    texts = [f"text {n}" for n in range(200)]

    async with make_engine(provider, batch_size=10, max_concurrent=2) as engine:
        vectors = await engine.embed(texts)

    assert provider.max_held == 4
    # Two decoding, two waiting with their slots: the fifth request waits for a decoding.
    first = provider.call_times[0]
    sent = [round(t - first, 2) for t in provider.call_times[:6]]
    assert sent == [0.0, 0.0, 0.01, 0.01, 1.01, 1.01]
    np.testing.assert_array_equal(vectors, hashed(texts))


@on_virtual_clock
async def test_an_answer_that_fails_its_decoding_is_requested_again() -> None:
    provider = DecodesLater(delay=0.1, decoding=0.05, garbled=1)

    async with make_engine(provider, batch_size=10, max_concurrent=1) as engine:
        vectors = await engine.embed(["a", "b"])

    assert provider.calls == [["a", "b"], ["a", "b"]]
    assert engine.statistics().retries == 1
    np.testing.assert_array_equal(vectors, hashed(["a", "b"]))


# ---- plan: a round's texts fetched before anyone asks ----------------------------------


@on_virtual_clock
async def test_a_plan_sends_full_batches_only_but_the_last() -> None:
    provider = HashProvider(delay=0.3)
    texts = [f"text {n}" for n in range(1050)]
    asked = [*texts, *texts[:40], " text  7 "]  # duplicates and a spacing variant

    async with make_engine(provider, batch_size=100, max_concurrent=4) as engine:
        claimed = engine.plan(asked)
        vectors = await engine.embed(texts)

    assert claimed == 1050
    assert [len(call) for call in provider.calls] == [100] * 10 + [50]
    assert sorted(provider.sent()) == sorted(texts)  # each text once
    np.testing.assert_array_equal(vectors, hashed(texts))


@on_virtual_clock
async def test_a_plan_keeps_every_slot_busy_from_the_first_request_to_the_last() -> None:
    provider = HashProvider(delay=0.3)
    texts = [f"text {n}" for n in range(3200)]
    loop = asyncio.get_running_loop()

    async with make_engine(provider, batch_size=100, max_concurrent=8) as engine:
        started = loop.time()
        engine.plan(texts)
        await engine.embed(texts[-1:])  # the last text of the plan: the last request
        finished = loop.time()

    # 32 requests, 8 at a time, 0.3 s each: exactly 4 waves, no linger, no gap.
    assert len(provider.calls) == 32
    assert provider.max_in_flight == 8
    assert provider.call_times[:8] == pytest.approx([started] * 8, abs=1e-3)
    assert finished - started == pytest.approx(4 * 0.3, abs=1e-3)


@on_virtual_clock
async def test_themes_asking_after_a_plan_make_no_request_of_their_own() -> None:
    provider = HashProvider(delay=0.1)
    themes = theme_texts(30, 12, shared=["shared a", "shared b"])

    async with make_engine(provider, batch_size=100, max_concurrent=2) as engine:
        engine.plan(text for texts in themes for text in texts)
        results = await asyncio.gather(*(engine.embed(texts) for texts in themes))

    distinct = {text for texts in themes for text in texts}
    assert len(provider.sent()) == len(distinct) == 30 * 12 + 2
    assert len(provider.calls) == math.ceil(len(distinct) / 100)
    for texts, vectors in zip(themes, results, strict=True):
        np.testing.assert_array_equal(vectors, hashed(texts))


@on_virtual_clock
async def test_a_plan_skips_what_memory_and_the_store_hold(tmp_path: Path) -> None:
    texts = [f"text {n}" for n in range(250)]
    async with store_holding(tmp_path, texts[:100]) as store:
        provider = HashProvider()
        async with make_engine(provider, batch_size=100, store=store) as engine:
            await engine.embed(texts[100:130])  # now in memory
            before = len(provider.sent())
            claimed = engine.plan(texts)
            vectors = await engine.embed(texts)

    assert claimed == 250 - 30
    assert sorted(provider.sent()[before:]) == sorted(texts[130:])
    assert [len(call) for call in provider.calls[1:]] == [100, 20]
    np.testing.assert_array_equal(vectors, hashed(texts))


@on_virtual_clock
async def test_filler_tops_up_the_last_batch_and_the_idle_slots_of_the_last_wave() -> None:
    provider = HashProvider(delay=0.3)
    texts = [f"text {n}" for n in range(1050)]
    spares = [f"spare {n}" for n in range(1000)]
    loop = asyncio.get_running_loop()

    async with make_engine(provider, batch_size=100, max_concurrent=4) as engine:
        started = loop.time()
        engine.plan(texts, filler=[*texts[:10], *spares])  # planned texts are not filler
        await engine.embed(texts)
        finished = loop.time()
        sent = len(provider.calls)
        vectors = await engine.embed(spares[:150])  # from memory now

    # 11 requests, the last of 50 texts: 3 waves of 4, the last with a slot idle. The
    # filler takes the 50 places and the idle slot: 12 full requests, in the same time.
    assert [len(call) for call in provider.calls] == [100] * 12
    assert sent == 12
    assert provider.sent()[1050:] == spares[:150]
    assert finished - started == pytest.approx(3 * 0.3, abs=1e-3)
    np.testing.assert_array_equal(vectors, hashed(spares[:150]))


@on_virtual_clock
async def test_filler_retried_after_the_round_counts_once_the_engine_is_closed() -> None:
    # Only the spares wait on an idle-slot batch: thrown back by a 429, it is retried
    # after the round's themes have their vectors. The run reads the figures after the
    # engine is closed (asyncpipe.stages.driver), when that retry is over.
    def quota() -> RetryableEmbeddingError:
        return RetryableEmbeddingError("429 quota", status=429, retry_after=1.0)

    provider = ScriptedProvider({2: quota}, delay=0.1)
    texts = [f"text {n}" for n in range(10)]
    async with make_engine(provider, batch_size=10, max_concurrent=2) as engine:
        engine.plan(texts, filler=[f"spare {n}" for n in range(10)])
        await engine.embed(texts)
        during = engine.statistics()
    after = engine.statistics()

    assert during.requests == 2  # the retry waits out the server's delay
    assert (after.requests, after.retries, after.gate.throttled) == (3, 1, 1)
    assert len(provider.calls) == after.requests


@on_virtual_clock
async def test_spaced_requests_take_filler_only_into_the_last_batch() -> None:
    provider = HashProvider(delay=0.3)
    texts = [f"text {n}" for n in range(1050)]
    spares = [f"spare {n}" for n in range(1000)]

    async with make_engine(provider, batch_size=100, max_concurrent=4, min_interval=0.01) as engine:
        engine.plan(texts, filler=spares)
        await engine.embed(texts)

    assert [len(call) for call in provider.calls] == [100] * 11
    assert provider.sent()[1050:] == spares[:50]


@on_virtual_clock
async def test_a_daily_budget_takes_filler_only_into_the_last_batch_and_a_token_limit_none(
    tmp_path: Path,
) -> None:
    texts = [f"text {n}" for n in range(1050)]
    spares = [f"spare {n}" for n in range(1000)]
    sent = {}
    for name, limits in (
        ("budget", {"budget": DailyBudget(tmp_path / BUDGET_FILE, 100, now=june_first)}),
        ("tokens", {"tokens_per_minute": 1_000_000}),
    ):
        provider = HashProvider(delay=0.3)
        async with make_engine(provider, batch_size=100, max_concurrent=4, **limits) as engine:
            engine.plan(texts, filler=spares)
            await engine.embed(texts)
        sent[name] = provider.sent()[1050:]

    # Every request counts against the budget: the idle slot is left idle.
    assert sent["budget"] == spares[:50]
    # Every text counts against the token limit: none is fetched on speculation.
    assert sent["tokens"] == []


@on_virtual_clock
async def test_filler_the_store_or_memory_holds_is_skipped_unread(tmp_path: Path) -> None:
    texts = [f"text {n}" for n in range(130)]
    spares = [f"spare {n}" for n in range(300)]
    async with store_holding(tmp_path, spares[:40]) as store:
        provider = HashProvider()
        async with make_engine(provider, batch_size=100, max_concurrent=2, store=store) as engine:
            await engine.embed(spares[40:50])  # in memory now
            before = len(provider.calls)
            engine.plan(texts, filler=spares)
            await engine.embed(texts)
        hits = store.statistics().hits

    # 130 texts: 2 requests, both slots busy; the second takes 70 filler texts, those
    # neither stored nor in memory.
    assert [len(call) for call in provider.calls[before:]] == [100, 100]
    assert provider.sent()[before * 10 + 130 :] == spares[50:120]
    assert hits == 0  # the stored filler texts were not read


@on_virtual_clock
async def test_a_plan_that_sends_nothing_sends_no_filler(tmp_path: Path) -> None:
    texts = [f"text {n}" for n in range(50)]
    async with store_holding(tmp_path, texts) as store:
        provider = HashProvider()
        async with make_engine(provider, batch_size=100, store=store) as engine:
            engine.plan(texts, filler=[f"spare {n}" for n in range(100)])
            await engine.embed(texts)

    assert provider.calls == []


@on_virtual_clock
async def test_filler_held_by_the_store_is_looked_at_a_few_times_the_room_at_most(
    tmp_path: Path,
) -> None:
    texts = [f"text {n}" for n in range(90)]
    spares = [f"spare {n}" for n in range(1000)]
    async with store_holding(tmp_path, spares[:900]) as store:
        provider = HashProvider()
        async with make_engine(provider, batch_size=100, max_concurrent=1, store=store) as engine:
            engine.plan(texts, filler=spares)
            await engine.embed(texts)

    # Room for 10; the first 40 filler texts looked at are all stored: no more is looked at.
    assert [len(call) for call in provider.calls] == [90]


class RecordedLookups(EmbeddingStore):
    """The real store, recording how many texts each lookup asked for."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.lookups: list[int] = []

    async def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        self.lookups.append(len(texts))
        return await super().get_many(texts)


@on_virtual_clock
async def test_the_first_wave_leaves_after_one_waves_lookup_and_before_planned_returns(
    tmp_path: Path,
) -> None:
    texts = [f"text {n}" for n in range(5000)]
    store = RecordedLookups(tmp_path / STORE_FILE, NAMESPACE)
    await store.open()
    try:
        provider = HashProvider(delay=0.3)
        async with make_engine(provider, batch_size=100, max_concurrent=4, store=store) as engine:
            engine.plan(texts)
            await engine.planned()
            sent_when_planned = len(provider.calls)
            await engine.embed(texts)
    finally:
        await store.close()

    assert store.lookups == [400, 2000, 2000, 600]
    assert sent_when_planned == 4  # the first wave is out; the rest queue for slots
    assert len(provider.calls) == 50


@on_virtual_clock
async def test_a_stopped_engine_plans_nothing() -> None:
    provider = HashProvider()
    async with make_engine(provider) as engine:
        engine.stop()
        assert engine.plan(["a", "b"]) == 0
    assert provider.calls == []
