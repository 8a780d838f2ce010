"""The request gate: how many requests may be in flight, and how fast they may start.

Four pieces compose here, each with one job:

- an `asyncio.Semaphore` caps requests in flight (`max_concurrent_requests`);
- an `aiolimiter.AsyncLimiter` caps the request rate, shaped so that no 60-second
  window ever holds more than `requests_per_minute` starts. A plain
  `AsyncLimiter(rpm, 60)` lets a burst of `rpm` through at once and then refills,
  so a window straddling the refill can see nearly twice the limit. A leaky
  bucket of capacity b draining at r per second admits at most b + r*T starts in
  any T seconds, so capacity b and rate (rpm - b) / 60 bound every minute to rpm;
- a `TokenLimiter` does the same for the estimated tokens of each request
  (`tokens.request_tokens`) against `tokens_per_minute`, with weighted amounts;
- a spacing rule (`min_request_interval`) and a shared pause: after a 429 the
  whole client waits out the server's retry delay, and the spacing between
  starts widens, then narrows again as requests succeed.

No lock is held across an await: reservations of the next start time are made
synchronously, then slept on. Every time is read from the running event loop's
clock (`loop.time()`), the clock asyncio's timers and aiolimiter use, so a test
loop with a virtual clock drives all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from asyncpipe.errors import UnembeddableTextError

#: Spacing added after a 429, as a multiple of the steady spacing, and how fast it decays.
_BACKOFF_GROWTH = 2.0
_BACKOFF_DECAY = 0.9
_MAX_SPACING = 10.0


@dataclass(frozen=True, slots=True)
class GateStatistics:
    """A snapshot of a `RequestGate`'s figures, from `RequestGate.statistics()`.

    The wait figures are wall time on the loop's clock: a second during which
    ten requests waited counts once, so none of them can exceed the time the
    gate was in use.
    """

    #: Requests admitted through the gate (each retry is a request of its own).
    requests_started: int
    #: Requests admitted and not yet finished, at the time of the snapshot.
    in_flight: int
    #: The most requests in flight at once.
    max_in_flight: int
    #: Seconds during which at least one request queued for a free slot (the concurrency cap).
    slot_wait_seconds: float
    #: Seconds during which at least one request, holding a slot, was held back by the
    #: rate limit, the spacing or a 429 pause.
    limiter_wait_seconds: float
    #: 429 answers reported through `throttled()`.
    throttled: int
    #: Seconds the gate was paused after 429s (pauses that overlap count once).
    pause_seconds: float
    #: Estimated tokens of the requests admitted (`tokens.request_tokens`), retries included.
    tokens_started: int = 0


class _Overlap:
    """Seconds during which at least one waiter waited: overlapping waits merged, not summed."""

    __slots__ = ("_since", "_total", "_waiting")

    def __init__(self) -> None:
        self._total = 0.0
        self._waiting = 0
        self._since = 0.0

    def enter(self, now: float) -> None:
        if self._waiting == 0:
            self._since = now
        self._waiting += 1

    def leave(self, now: float) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._total += now - self._since

    def seconds(self, now: float) -> float:
        return self._total + (now - self._since if self._waiting else 0.0)


def shaped_limiter(requests_per_minute: int, burst: int) -> AsyncLimiter:
    """A limiter that admits at most `requests_per_minute` starts in any 60 seconds.

    Or that many units acquired by amount (`TokenLimiter`): the bound holds for weights
    too, and no single amount may exceed the bucket's capacity, `burst` clamped below
    the limit."""
    if requests_per_minute <= 1:
        return AsyncLimiter(1, 60.0)
    burst = max(1, min(burst, requests_per_minute - 1))
    steady_per_minute = requests_per_minute - burst
    return AsyncLimiter(burst, 60.0 * burst / steady_per_minute)


class TokenLimiter:
    """At most `tokens_per_minute` estimated tokens start in any 60 seconds.

    The reasoning of `shaped_limiter`, with amounts: a leaky bucket of capacity b
    draining at r tokens a second admits at most b + 60r tokens in any minute, so
    b + 60r = tokens_per_minute holds every window. But b is also the largest amount
    the bucket can take at once (aiolimiter refuses a larger one, and rightly: letting
    it through would break the bound), so b is the largest request that may go out.
    It is a tenth of the limit (`BURST_SHARE`): requests of a few hundred tokens fit
    many times over, and the steady rate keeps nine tenths of the minute.

    The rule for a request estimated above b: it is never sent whole. The engine cuts
    a batch into requests that fit (`tokens.within`); a single text estimated above b
    is not sent at all and fails as unembeddable (its theme is replaced), with a
    message naming the setting. At the default share that is a text of more than
    0.4 x tokens_per_minute bytes, far from a puzzle's words and themes.

    aiolimiter wakes the smallest waiting amount first; the waiters are the requests
    holding a slot, at most `max_concurrent_requests`, and of about one size.
    """

    #: The bucket's capacity, and so the largest request, as a share of the minute's limit.
    BURST_SHARE = 0.1

    def __init__(self, tokens_per_minute: int) -> None:
        self._tokens_per_minute = tokens_per_minute
        self._limiter = shaped_limiter(
            tokens_per_minute, burst=max(1, int(tokens_per_minute * self.BURST_SHARE))
        )

    @property
    def largest_request(self) -> int:
        """The most tokens one request may be estimated at."""
        return int(self._limiter.max_rate)

    def refuse_if_too_large(self, tokens: int) -> None:
        """`UnembeddableTextError` for a request that can never start within the limit."""
        if tokens > self.largest_request:
            raise UnembeddableTextError(
                f"the request is estimated at {tokens} tokens, more than one request may "
                f"carry under gemini.tokens_per_minute = {self._tokens_per_minute} "
                f"(at most {self.largest_request} at once)"
            )

    async def acquire(self, tokens: int) -> None:
        """Wait until `tokens` may start; `UnembeddableTextError` if they never can."""
        self.refuse_if_too_large(tokens)
        await self._limiter.acquire(tokens)


class RequestGate:
    """Admission for one request at a time: `async with gate.slot(tokens): send()`."""

    def __init__(
        self,
        max_concurrent: int,
        requests_per_minute: int | None,
        min_interval: float = 0.0,
        tokens_per_minute: int | None = None,
    ) -> None:
        self._max_concurrent = max_concurrent
        self._semaphore = asyncio.Semaphore(max_concurrent)
        # A burst as large as the concurrency lets the first wave go out at once.
        # No rate (None) is for local providers, which have no quota.
        self._limiter = (
            shaped_limiter(requests_per_minute, burst=max_concurrent)
            if requests_per_minute is not None
            else None
        )
        self._tokens = TokenLimiter(tokens_per_minute) if tokens_per_minute is not None else None
        self._min_interval = min_interval
        self._extra_spacing = 0.0
        self._next_start = 0.0
        self._paused_until = 0.0
        self._requests_started = 0
        self._tokens_started = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._throttled = 0
        self._pause_seconds = 0.0
        self._slot_waits = _Overlap()
        self._limiter_waits = _Overlap()

    @property
    def max_concurrent(self) -> int:
        return self._max_concurrent

    @property
    def largest_request(self) -> int | None:
        """The most estimated tokens one request may carry; None: no token limit."""
        return self._tokens.largest_request if self._tokens is not None else None

    @property
    def spaced(self) -> bool:
        """Whether starts are spaced (`min_request_interval`): then every request costs
        its interval, even one that would take a slot left idle."""
        return self._min_interval > 0

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        """Hold a request slot for one request estimated at `tokens` (`tokens.request_tokens`).

        A request above the token limit's `largest_request` is refused at once, before
        it takes a slot: `UnembeddableTextError`.
        """
        if self._tokens is not None:
            self._tokens.refuse_if_too_large(tokens)
        loop = asyncio.get_running_loop()
        self._slot_waits.enter(loop.time())
        try:
            await self._semaphore.acquire()
        finally:
            self._slot_waits.leave(loop.time())
        try:
            self._limiter_waits.enter(loop.time())
            try:
                # A 429 may arrive while we wait in the limiter or the spacing: then wait
                # out the pause and queue again, rather than go out into the throttling.
                while True:
                    await self._wait_for_pause()
                    if self._limiter is not None:
                        await self._limiter.acquire()
                    if self._tokens is not None:
                        await self._tokens.acquire(tokens)
                    await self._wait_for_spacing()
                    if loop.time() >= self._paused_until:
                        break
            finally:
                self._limiter_waits.leave(loop.time())
            self._requests_started += 1
            self._tokens_started += tokens
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1
        finally:
            self._semaphore.release()

    def throttled(self, retry_after: float | None) -> None:
        """The server answered 429: everyone waits, and starts spread out for a while."""
        self._throttled += 1
        now = asyncio.get_running_loop().time()
        # The requests that were in flight when the quota ran out all come back 429:
        # one throttling event, so the spacing widens once, not once per request.
        same_event = now < self._paused_until
        if retry_after is not None and retry_after > 0:
            until = max(self._paused_until, now + retry_after)
            self._pause_seconds += until - max(self._paused_until, now)
            self._paused_until = until
        if not same_event:
            base = max(self._min_interval, self._extra_spacing, 0.05)
            self._extra_spacing = min(_MAX_SPACING, base * _BACKOFF_GROWTH)

    def succeeded(self) -> None:
        if self._extra_spacing:
            self._extra_spacing *= _BACKOFF_DECAY
            if self._extra_spacing < 0.01:
                self._extra_spacing = 0.0

    def statistics(self) -> GateStatistics:
        """A snapshot of the figures so far; waits still going on count up to now."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # read after the loop ended: no wait can still be going on
            now = 0.0
        return GateStatistics(
            requests_started=self._requests_started,
            in_flight=self._in_flight,
            max_in_flight=self._max_in_flight,
            slot_wait_seconds=self._slot_waits.seconds(now),
            limiter_wait_seconds=self._limiter_waits.seconds(now),
            throttled=self._throttled,
            pause_seconds=self._pause_seconds,
            tokens_started=self._tokens_started,
        )

    async def _wait_for_pause(self) -> None:
        loop = asyncio.get_running_loop()
        # Loop: a 429 answered while we slept may have pushed the pause further out.
        while (remaining := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(remaining)

    async def _wait_for_spacing(self) -> None:
        spacing = max(self._min_interval, self._extra_spacing)
        if spacing <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_start)
        self._next_start = start + spacing  # reserved before sleeping: no lock needed
        if start > now:
            await asyncio.sleep(start - now)
