"""The embedding engine: every text embedded once, in full batches, within the limits.

A theme asks for its texts with `await engine.embed(texts)`. Each text goes,
in order, to:

1. the in-memory LRU (`cache.LruVectorCache`);
2. a request already in flight for the same text (in-flight de-duplication:
   a text several themes need at the same moment is requested once);
3. the persistent store (`store.EmbeddingStore`), looked up in one query;
4. the batcher: uncached texts from all themes in flight are coalesced into
   requests of up to `batch_size` texts. A batch goes out when full, or after a
   short linger so that a lone theme is not held back;
5. the gate (`limits.RequestGate`: concurrency, rate, tokens, spacing, 429
   pause), the daily budget (`daily_budget.DailyBudget`, when there is one) and
   the provider, retried by `retry.RetryPolicy`. A provider that receives an
   answer before decoding it (`ReceivesBeforeDecoding`: the REST transport)
   gives its request slot back before the decoding. Under a token limit a batch
   estimated above the largest request the limit allows is cut into requests
   that fit (`tokens.within`).

Vectors that come back fill the cache and are committed to the store before
the themes waiting on them resume. A text the engine was told is `refused` (by
the Batch API jobs that ran before it: `batch_jobs`) is never requested: whoever
asks for it gets its error. A fatal provider error (bad key, bad
request) fails every waiting theme with it, so the run stops; a request that
still fails after its retries fails only the themes that needed it.

`stop()` (a SIGINT or SIGTERM) sends nothing new but lets the requests in
flight finish and be stored; `abandon()`, when the grace is spent, cancels them
too. Either way the themes left waiting get `EmbeddingStopped`. A spent day
(`DailyQuotaSpent`: the budget, or the API's per-day 429) stops the engine the
same way, by itself, and `quota_spent` tells the run why.

A round whose texts are all known up front is better served by `plan(texts)`
before any theme asks: every distinct text not in memory or in flight is claimed
at once, looked up in the store in a few large queries, and what is missing goes
out in full batches straight away (the last one part-filled), so every request
slot is busy from the first request to the last and no batch waits to fill. The
themes' own `embed` calls then find their texts in flight. A plan can carry
filler (a round's spare themes), fetched only where it costs no more time: in
the room left in the plan's last batch and in its last wave's idle slots.

The batch sends run in the engine's own task group: `async with engine:`.
Latencies and waits are read from the running event loop's clock.

`statistics()` gathers the figures of the engine and of the pieces it joins
(cache, store, gate) into one frozen `EngineStatistics`; each figure is
counted once, by the piece it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from asyncpipe.embeddings.cache import CacheStatistics, LruVectorCache, normalise_text
from asyncpipe.embeddings.daily_budget import DailyBudget
from asyncpipe.embeddings.limits import GateStatistics, RequestGate
from asyncpipe.embeddings.providers.base import (
    Decoded,
    EmbeddingProvider,
    ReceivesBeforeDecoding,
)
from asyncpipe.embeddings.retry import RetryPolicy
from asyncpipe.embeddings.store import EmbeddingStore, StoreStatistics
from asyncpipe.embeddings.tokens import request_tokens, within
from asyncpipe.errors import (
    DailyQuotaSpent,
    EmbeddingError,
    EmbeddingStopped,
    FatalEmbeddingError,
    RetryableEmbeddingError,
    UnembeddableTextError,
)

log = logging.getLogger(__name__)

#: How long a part-filled batch waits for more texts before it goes out anyway.
DEFAULT_LINGER = 0.01
#: Texts of a plan looked up in the store per query: the first requests go out after
#: one query, not after the whole plan's.
PLAN_LOOKUP_TEXTS = 2000
#: A plan's filler is looked at for at most this many times the room it may fill: the
#: texts the store already holds take no room, and a warm store could hold them all.
_FILLER_SCAN = 4


@dataclass(frozen=True, slots=True)
class RequestLatency:
    """How long the provider took to answer a request, over the requests it answered."""

    #: The median, in seconds (rounded to 0.1 ms).
    p50_seconds: float
    #: The 95th percentile, in seconds (rounded to 0.1 ms).
    p95_seconds: float


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of an `EmbeddingEngine`'s figures and those of its pieces.

    The engine counts only what happens in the engine; the cache, the store and
    the gate each report their own figures, gathered here as fields.
    """

    #: Requests sent to the provider, retries included.
    requests: int
    #: Texts sent to the provider, summed over requests (a retried batch counts again).
    texts_requested: int
    #: Texts asked for by callers of `embed`, duplicates included.
    texts_asked: int
    #: Texts a plan's filler queued for a request (`plan(filler=...)`), asked for or not.
    texts_prefetched: int
    #: Distinct texts of a call that were already being fetched for another caller.
    in_flight_hits: int
    #: Retries of a request after a retryable error.
    retries: int
    #: Requests given up: a fatal error, or a retryable one with no retry left.
    failed_requests: int
    #: Request latency; None when no request was answered (then it has no figures).
    latency: RequestLatency | None
    #: The in-memory LRU: its `hits` are the texts answered from memory.
    cache: CacheStatistics
    #: The persistent store, if the engine has one: its `hits` are texts answered from disk.
    store: StoreStatistics | None
    #: The request gate: slots, waits, and the 429s it was told of.
    gate: GateStatistics

    def to_json(self) -> dict[str, float | int | str]:
        """The figures as the metadata records them; figures that do not exist are left out."""
        figures: dict[str, float | int | str] = {
            "requests": self.requests,
            "texts_requested": self.texts_requested,
            "texts_asked": self.texts_asked,
            "texts_prefetched": self.texts_prefetched,
            "cache_hits_memory": self.cache.hits,
            # No store: no text came from disk, a real zero rather than a missing figure.
            "cache_hits_disk": self.store.hits if self.store is not None else 0,
            "in_flight_dedup_hits": self.in_flight_hits,
            "retries": self.retries,
            "throttled_429": self.gate.throttled,
            "failed_requests": self.failed_requests,
            "estimated_tokens": self.gate.tokens_started,
        }
        if self.latency is not None:
            figures["latency_p50_seconds"] = self.latency.p50_seconds
            figures["latency_p95_seconds"] = self.latency.p95_seconds
        figures.update(
            max_requests_in_flight=self.gate.max_in_flight,
            slot_wait_seconds=round(self.gate.slot_wait_seconds, 3),
            limiter_wait_seconds=round(self.gate.limiter_wait_seconds, 3),
            throttle_pause_seconds=round(self.gate.pause_seconds, 3),
            memory_cache_size=self.cache.size,
            memory_cache_mb=round(self.cache.size_bytes / 2**20, 1),
            memory_cache_evictions=self.cache.evictions,
        )
        if self.store is not None:
            figures.update(
                store_path=str(self.store.path),
                store_written=self.store.written,
                store_corrupt_rows=self.store.corrupt_rows,
            )
        return figures


class EmbeddingEngine:
    """Cache, de-duplication, batching, limits and retries around one provider."""

    def __init__(
        self,
        provider: EmbeddingProvider,
        gate: RequestGate,
        retry: RetryPolicy,
        batch_size: int,
        memory: LruVectorCache,
        store: EmbeddingStore | None = None,
        linger: float = DEFAULT_LINGER,
        seed: int = 0,
        budget: DailyBudget | None = None,
        refused: Mapping[str, EmbeddingError] | None = None,
    ) -> None:
        self._provider = provider
        # Texts never to request (the Batch API refused them, or their jobs failed): the
        # themes asking for one get its error, as if a request had failed for it alone.
        self._refused = dict(refused or {})
        self._gate = gate
        self._retry = retry
        self._batch_size = batch_size
        self._memory = memory
        self._store = store
        self._linger = linger
        self._budget = budget
        self._rng = random.Random(seed)  # jitter only; never affects results
        # A provider that can hand over an answer before decoding it gets its request
        # slot back in between: the next request goes out while this one is decoded.
        # At most as many answers are decoded at once as requests may be in flight; an
        # answer received while all are busy keeps its slot until one is free, so the
        # answers held undecoded are at most twice the slots.
        self._receive = provider.receive if isinstance(provider, ReceivesBeforeDecoding) else None
        self._decoding = asyncio.Semaphore(gate.max_concurrent)
        self._in_flight: dict[str, asyncio.Future[np.ndarray]] = {}
        self._pending: list[str] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._sending = 0  # batches handed to a send task and not finished
        self._dispatched = 0  # batches handed to a send task, ever
        self._fatal: FatalEmbeddingError | None = None
        self._stopped = False
        self._quota_spent: DailyQuotaSpent | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._planning: set[asyncio.Task[None]] = set()
        self._tasks: asyncio.TaskGroup | None = None
        # The engine's own counters; `statistics()` snapshots them.
        self._requests = 0
        self._texts_requested = 0
        self._texts_asked = 0
        self._texts_prefetched = 0
        self._in_flight_hits = 0
        self._retries = 0
        self._failed_requests = 0
        self._latencies: list[float] = []

    async def __aenter__(self) -> EmbeddingEngine:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self._flush()  # the last part-filled batch
        try:
            if self._tasks is not None:
                await self._tasks.__aexit__(kind, error, traceback)
        finally:
            # Whatever is still pending now has nobody to send it: the run is ending.
            self._tasks = None
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            abandoned, self._pending = self._pending, []
            for key in abandoned:
                self._settle(key, error=asyncio.CancelledError())

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def quota_spent(self) -> DailyQuotaSpent | None:
        """The error that stopped the engine because the day's requests are spent, if one did."""
        return self._quota_spent

    def stop(self) -> None:
        """Send nothing new: requests already sent may still finish and be stored.

        Texts waiting for a batch, for a request slot or for a retry are given up:
        the themes waiting on them get `EmbeddingStopped`, and so does any later
        `embed`.
        """
        self._stopped = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        abandoned, self._pending = self._pending, []
        for key in abandoned:
            self._settle(key, error=_stopping())

    def abandon(self) -> None:
        """`stop`, and cancel the requests in flight too: their answers are not waited for."""
        self.stop()
        for key in list(self._in_flight):
            self._settle(key, error=_stopping())
        for task in list(self._sends):
            task.cancel()

    def plan(self, texts: Iterable[str], filler: Iterable[str] = ()) -> int:
        """Start fetching every text of `texts` not in memory or in flight, in order, in
        full batches; returns how many distinct texts were claimed.

        Nothing is returned here: the vectors come to `embed`, whose callers find
        their texts in flight (or, once answered, in memory or in the store). A text
        of the plan nobody asks for is still fetched and stored.

        `filler`: texts worth fetching only where they cost no more time (a round's
        spare themes). Once the plan's own texts are queued, its last part-filled
        batch is topped up from them, and so are the request slots its last wave
        would leave idle, unless requests are spaced (`RequestGate.spaced`: there
        every request costs its interval) or counted against a daily budget. Under
        a token limit there is no filler. Filler texts in the store are skipped
        unread. A plan that sends no request sends no filler either.
        """
        if self._tasks is None:
            raise RuntimeError("EmbeddingEngine used outside `async with engine:`")
        if self._fatal is not None or self._stopped:
            return 0
        claimed: list[str] = []
        for key in dict.fromkeys(normalise_text(text) for text in texts):
            if key in self._in_flight or key in self._memory:
                continue
            self._claim(key)
            claimed.append(key)
        if claimed:
            fetch = self._tasks.create_task(self._fetch_planned(claimed, iter(filler)))
            self._planning.add(fetch)
            fetch.add_done_callback(self._planning.discard)
        return len(claimed)

    async def planned(self) -> None:
        """Wait until every text planned so far is queued for a request or found stored.

        The round's themes start after this: a few hundred themes asking at once are
        tens of milliseconds of the loop's time, better spent after the first requests
        are out than before them. Their texts are in flight either way.
        """
        if self._planning:
            await asyncio.wait(set(self._planning))

    async def _fetch_planned(self, keys: list[str], filler: Iterator[str]) -> None:
        dispatched = self._dispatched
        # The first lookup is one wave of requests' worth, so the first wave leaves
        # after a small query; the rest go in larger ones.
        start, size = 0, min(PLAN_LOOKUP_TEXTS, self._batch_size * self._gate.max_concurrent)
        while start < len(keys):
            chunk = keys[start : start + size]
            if self._store is not None:
                await self._look_up_store(self._store, chunk, linger=False)
            else:
                for key in chunk:
                    self._enqueue(key, linger=False)
            start, size = start + size, PLAN_LOOKUP_TEXTS
        room = self._filler_room(self._dispatched - dispatched)
        if room:
            await self._fill(filler, room)
        self._flush()  # the plan's last, part-filled batch goes out now

    def _filler_room(self, dispatched: int) -> int:
        """Texts that fit in the plan's requests, and in its last wave's idle slots,
        at no extra cost: the plan sent `dispatched` full batches, and has its part-filled
        one pending.

        None under a token limit, where every text costs; and no idle slot under a
        daily budget, where every request does, nor when requests are spaced.
        """
        pending = len(self._pending)
        requests = dispatched + (1 if pending else 0)
        if not requests or self._gate.largest_request is not None:
            return 0
        room = -pending % self._batch_size
        if not self._gate.spaced and self._budget is None:
            room += (-requests % self._gate.max_concurrent) * self._batch_size
        return room

    async def _fill(self, filler: Iterator[str], room: int) -> None:
        """Queue up to `room` texts of `filler` that nothing holds: neither memory, nor a
        request in flight, nor the store. At most `_FILLER_SCAN` times `room` are looked at."""
        budget = _FILLER_SCAN * room
        while room > 0 and budget > 0 and not self._stopped:
            chunk: dict[str, None] = {}  # in order, each text once
            for text in filler:
                key = normalise_text(text)
                if key in self._in_flight or key in self._memory or key in chunk:
                    continue
                chunk[key] = None
                if len(chunk) == min(room, budget):
                    break
            if not chunk:
                return
            budget -= len(chunk)
            keys = list(chunk)
            missing = await self._store.absent(keys) if self._store is not None else keys
            for key in missing:
                if key not in self._in_flight and key not in self._memory:
                    self._claim(key)
                    self._enqueue(key, linger=False)
                    self._texts_prefetched += 1
                    room -= 1

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts`, one row each, in order: a new (len(texts), D) matrix."""
        rows = await self.embed_rows(texts)
        if not rows:
            return np.zeros((0, self._provider.info.dimension), dtype=np.float32)
        return np.stack(rows)

    async def embed_rows(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for `texts`, in order, each a read-only float32 vector shared with the
        cache and with every other caller of the same text: a batch's themes hold each
        distinct vector once, not a copy per theme."""
        if self._tasks is None:
            raise RuntimeError("EmbeddingEngine used outside `async with engine:`")
        if self._fatal is not None:
            raise self._fatal
        if self._stopped:
            raise _stopping()
        keys = [normalise_text(text) for text in texts]
        self._texts_asked += len(keys)
        found: dict[str, np.ndarray] = {}
        waiting: dict[str, asyncio.Future[np.ndarray]] = {}
        missing: list[str] = []
        for key in dict.fromkeys(keys):
            vector = self._memory.get(key)
            if vector is not None:
                found[key] = vector
            elif key in self._in_flight:
                waiting[key] = self._in_flight[key]
                self._in_flight_hits += 1
            else:
                # Claimed before any await, so a theme asking for it meanwhile waits on us.
                waiting[key] = self._claim(key)
                missing.append(key)
        if missing and self._store is not None:
            # A task of the engine's, not ours: if this theme is cancelled, the themes
            # now waiting on the same texts still get them.
            self._tasks.create_task(self._look_up_store(self._store, missing))
        else:
            for key in missing:
                self._enqueue(key)
        for key, future in waiting.items():
            # Shielded: cancelling one theme must not cancel a text others wait for.
            found[key] = await asyncio.shield(future)
        return [found[key] for key in keys]

    def statistics(self) -> EngineStatistics:
        """A snapshot of the figures so far, the engine's and its pieces'."""
        return EngineStatistics(
            requests=self._requests,
            texts_requested=self._texts_requested,
            texts_asked=self._texts_asked,
            texts_prefetched=self._texts_prefetched,
            in_flight_hits=self._in_flight_hits,
            retries=self._retries,
            failed_requests=self._failed_requests,
            latency=_latency(self._latencies),
            cache=self._memory.statistics(),
            store=self._store.statistics() if self._store is not None else None,
            gate=self._gate.statistics(),
        )

    def _claim(self, key: str) -> asyncio.Future[np.ndarray]:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        # A theme cancelled while waiting never reads its future: mark errors as seen.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._in_flight[key] = future
        return future

    async def _look_up_store(
        self, store: EmbeddingStore, keys: list[str], linger: bool = True
    ) -> None:
        try:
            stored = await store.get_many(keys)
        except BaseException as error:
            for key in keys:
                self._settle(key, error=error)
            raise
        for key in keys:
            vector = stored.get(key)
            if vector is not None:
                self._settle(key, vector=self._memory.put(key, vector))
            else:
                self._enqueue(key, linger)

    def _enqueue(self, key: str, linger: bool = True) -> None:
        """Queue a text for a request: full batches go out at once; `linger`: a
        part-filled one goes out after the linger (a plan flushes its own at its end)."""
        if self._stopped:
            self._settle(key, error=_stopping())
            return
        refusal = self._refused.get(key)
        if refusal is not None:
            self._settle(key, error=type(refusal)(str(refusal), status=refusal.status))
            return
        self._pending.append(key)
        while len(self._pending) >= self._batch_size:
            self._dispatch(self._batch_size)
        if linger:
            self._arm_linger()

    def _arm_linger(self) -> None:
        """Send a part-filled batch after the linger, but only while a request slot is free.

        With every slot busy a part-filled batch gains nothing by going out (it
        would queue at the gate) and loses by going out small: it keeps filling
        until a slot frees up.
        """
        if (
            self._pending
            and self._tasks is not None
            and self._flush_timer is None
            and self._sending < self._gate.max_concurrent
        ):
            self._flush_timer = asyncio.get_running_loop().call_later(self._linger, self._flush)

    def _flush(self) -> None:
        """Send everything pending now, part-filled batch included."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        while self._pending:
            self._dispatch(self._batch_size)

    def _dispatch(self, size: int) -> None:
        if self._tasks is None:
            raise RuntimeError("EmbeddingEngine used outside `async with engine:`")
        batch = self._pending[:size]
        del self._pending[:size]
        self._sending += 1
        self._dispatched += 1
        task = self._tasks.create_task(self._send_and_release(batch))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_and_release(self, batch: list[str]) -> None:
        try:
            await self._send(batch)
        finally:
            self._sending -= 1
            self._arm_linger()

    async def _send(self, batch: list[str]) -> None:
        """Request one batch until it succeeds, retries run out, or a fatal error."""
        if self._fatal is not None:
            for key in batch:
                self._settle(key, error=self._fatal)
            return
        largest = self._gate.largest_request
        if largest is not None and len(batch) > 1 and request_tokens(batch) > largest:
            for part in within(batch, largest):  # too many tokens for one request
                await self._send(part)
            return
        try:
            vectors = await self._request_with_retries(batch)
        except UnembeddableTextError as error:
            if len(batch) > 1:
                # One text spoils the batch: send each alone, so only its own theme fails.
                for key in batch:
                    await self._send([key])
                return
            for key in batch:
                self._settle(key, error=error)
            return
        except EmbeddingStopped as error:
            if isinstance(error, DailyQuotaSpent):
                self._day_spent(error)
            for key in batch:
                self._settle(key, error=error)
            return
        except FatalEmbeddingError as error:
            if error is not self._fatal:  # the first fatal answer, not a batch turned back
                self._failed_requests += 1
                self._fail_everything(error)
            for key in batch:
                self._settle(key, error=error)
            return
        except EmbeddingError as error:
            self._failed_requests += 1
            for key in batch:
                self._settle(key, error=error)
            return
        except BaseException as error:  # cancelled: the waiting themes are cancelled too
            for key in batch:
                self._settle(key, error=error)
            raise
        # Compact copies, shared by the cache and the waiting themes: the answer's
        # matrix goes when this returns, not kept alive by a row view in some theme.
        kept = [self._memory.put(key, vector) for key, vector in zip(batch, vectors, strict=True)]
        if self._store is not None:
            try:
                await self._store.put_many(zip(batch, vectors, strict=True))
            except BaseException as error:
                for key in batch:
                    self._settle(key, error=error)
                raise
        for key, vector in zip(batch, kept, strict=True):
            self._settle(key, vector=vector)

    async def _request_with_retries(self, batch: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                async with self._gate.slot(request_tokens(batch)):
                    if self._fatal is not None:  # it came while we queued for the slot
                        raise self._fatal
                    if self._stopped:
                        raise _stopping()
                    if self._budget is not None:
                        self._budget.take()  # DailyQuotaSpent once today's are spent
                    started = loop.time()
                    self._requests += 1
                    self._texts_requested += len(batch)
                    if self._receive is not None:
                        answer = await self._receive(batch)
                    else:
                        answer = Decoded(await self._provider.embed(batch))
                    self._latencies.append(loop.time() - started)
                    # The slot is kept until a decoding may start: under a slow decoding
                    # (a busy pool), answers of megabytes would otherwise pile up.
                    await self._decoding.acquire()
                # The slot is free again while the answer is decoded (see __init__).
                try:
                    vectors = await answer.vectors()
                finally:
                    self._decoding.release()
                self._gate.succeeded()
                return vectors
            except RetryableEmbeddingError as error:
                if error.throttled:
                    self._gate.throttled(error.retry_after)
                attempt += 1
                if self._stopped:
                    raise _stopping() from error
                if not self._retry.should_retry(attempt):
                    raise
                self._retries += 1
                # Sleep outside the gate, so a waiting retry holds no request slot.
                await asyncio.sleep(self._retry.delay(attempt, error, self._rng))

    def _day_spent(self, error: DailyQuotaSpent) -> None:
        """No request may go out before midnight Pacific: stop, as after a signal."""
        if self._quota_spent is None:
            self._quota_spent = error
            log.warning(
                "%s: no new request is sent; the requests in flight finish, then the "
                "puzzles completed so far are written",
                error,
            )
            if self._budget is not None and error.status == 429:
                self._budget.spend_rest()  # the API's count: no run today sends another
        self.stop()

    def _fail_everything(self, error: FatalEmbeddingError) -> None:
        """Nothing more can succeed (bad key, bad request): every waiting theme gets the error."""
        self._fatal = error
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._pending.clear()
        for key in list(self._in_flight):
            self._settle(key, error=error)

    def _settle(
        self, key: str, vector: np.ndarray | None = None, error: BaseException | None = None
    ) -> None:
        future = self._in_flight.pop(key, None)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(vector)  # type: ignore[arg-type]
        elif isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)


def _stopping() -> EmbeddingStopped:
    """The error of every text given up once the engine is stopped (one per raise)."""
    return EmbeddingStopped("the run is stopping")


def _latency(latencies: list[float]) -> RequestLatency | None:
    if not latencies:
        return None
    values = np.asarray(latencies, dtype=np.float64)
    return RequestLatency(
        p50_seconds=round(float(np.percentile(values, 50)), 4),
        p95_seconds=round(float(np.percentile(values, 95)), 4),
    )
