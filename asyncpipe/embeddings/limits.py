"""The request gate: how many requests may be in flight, and how fast they may start.

Three pieces compose here, each with one job:

- an `asyncio.Semaphore` caps requests in flight (`max_concurrent_requests`);
- an `aiolimiter.AsyncLimiter` caps the request rate, shaped so that no 60-second
  window ever holds more than `requests_per_minute` starts. A plain
  `AsyncLimiter(rpm, 60)` lets a burst of `rpm` through at once and then refills,
  so a window straddling the refill can see nearly twice the limit. A leaky
  bucket of capacity b draining at r per second admits at most b + r*T starts in
  any T seconds, so capacity b and rate (rpm - b) / 60 bound every minute to rpm;
- a spacing rule (`min_request_interval`) and a shared pause: after a 429 the
  whole client waits out the server's retry delay, and the spacing between
  starts widens, then narrows again as requests succeed.

No lock is held across an await: reservations of the next start time are made
synchronously, then slept on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

#: Spacing added after a 429, as a multiple of the steady spacing, and how fast it decays.
_BACKOFF_GROWTH = 2.0
_BACKOFF_DECAY = 0.9
_MAX_SPACING = 10.0


@dataclass
class GateStatistics:
    requests_started: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    #: Time requests spent queued for a free slot (the concurrency cap).
    slot_wait_seconds: float = 0.0
    #: Time requests spent held back by the rate limit, the spacing and 429 pauses.
    limiter_wait_seconds: float = 0.0
    throttled: int = 0
    pause_seconds: float = 0.0


def shaped_limiter(requests_per_minute: int, burst: int) -> AsyncLimiter:
    """A limiter that admits at most `requests_per_minute` starts in any 60 seconds."""
    if requests_per_minute <= 1:
        return AsyncLimiter(1, 60.0)
    burst = max(1, min(burst, requests_per_minute - 1))
    steady_per_minute = requests_per_minute - burst
    return AsyncLimiter(burst, 60.0 * burst / steady_per_minute)


class RequestGate:
    """Admission for one request at a time: `async with gate.slot(): send()`."""

    def __init__(
        self, max_concurrent: int, requests_per_minute: int | None, min_interval: float = 0.0
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
        self._min_interval = min_interval
        self._extra_spacing = 0.0
        self._next_start = 0.0
        self._paused_until = 0.0
        self._statistics = GateStatistics()

    @property
    def max_concurrent(self) -> int:
        return self._max_concurrent

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        queued = time.perf_counter()
        async with self._semaphore:
            admitted = time.perf_counter()
            # A 429 may arrive while we wait in the limiter or the spacing: then wait out
            # the pause and queue again, rather than go out into the throttling.
            while True:
                await self._wait_for_pause()
                if self._limiter is not None:
                    await self._limiter.acquire()
                await self._wait_for_spacing()
                if asyncio.get_running_loop().time() >= self._paused_until:
                    break
            released = time.perf_counter()
            self._statistics.slot_wait_seconds += admitted - queued
            self._statistics.limiter_wait_seconds += released - admitted
            self._statistics.requests_started += 1
            self._statistics.in_flight += 1
            self._statistics.max_in_flight = max(
                self._statistics.max_in_flight, self._statistics.in_flight
            )
            try:
                yield
            finally:
                self._statistics.in_flight -= 1

    def throttled(self, retry_after: float | None) -> None:
        """The server answered 429: everyone waits, and starts spread out for a while."""
        self._statistics.throttled += 1
        now = asyncio.get_running_loop().time()
        # The requests that were in flight when the quota ran out all come back 429:
        # one throttling event, so the spacing widens once, not once per request.
        same_event = now < self._paused_until
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, now + retry_after)
        if not same_event:
            base = max(self._min_interval, self._extra_spacing, 0.05)
            self._extra_spacing = min(_MAX_SPACING, base * _BACKOFF_GROWTH)

    def succeeded(self) -> None:
        if self._extra_spacing:
            self._extra_spacing *= _BACKOFF_DECAY
            if self._extra_spacing < 0.01:
                self._extra_spacing = 0.0

    def statistics(self) -> GateStatistics:
        return GateStatistics(**vars(self._statistics))

    async def _wait_for_pause(self) -> None:
        loop = asyncio.get_running_loop()
        # Loop: a 429 answered while we slept may have pushed the pause further out.
        while (remaining := self._paused_until - loop.time()) > 0:
            self._statistics.pause_seconds += remaining
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
