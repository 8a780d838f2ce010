"""The request gate and its shaped limiter, timed on a virtual clock so no test sleeps.

aiolimiter and the gate read time from `loop.time()` and wait with timers, so an
event loop whose clock is virtual, and whose idle waits move that clock forward
instead of blocking, runs five minutes of rate limiting in milliseconds. The
clock is the shared one of `tests.support`; the gate's wait statistics read the
same clock, so they are checked exactly too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from asyncpipe.embeddings.limits import GateStatistics, RequestGate, TokenLimiter, shaped_limiter
from asyncpipe.errors import UnembeddableTextError
from tests.support import run_virtual

WINDOW = 60.0


async def greedy_starts(
    acquire: Callable[[], Awaitable[None]], acquirers: int, seconds: float
) -> list[float]:
    """Start times of `acquirers` tasks that each acquire again as soon as they may."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def acquirer() -> None:
        while loop.time() < seconds:
            await acquire()
            starts.append(loop.time())

    async with asyncio.TaskGroup() as group:
        for _ in range(acquirers):
            group.create_task(acquirer())
    return sorted(starts)


def busiest_window(starts: Sequence[float], width: float = WINDOW) -> int:
    """The most starts in any half-open window [t, t + width).

    The busiest window can always be slid to begin at a start, so checking
    the windows that begin at each start checks every window.
    """
    busiest = 0
    end = 0
    for first, start in enumerate(starts):
        end = max(end, first)
        while end < len(starts) and starts[end] < start + width:
            end += 1
        busiest = max(busiest, end - first)
    return busiest


def heaviest_window(starts: Sequence[tuple[float, int]], width: float = WINDOW) -> int:
    """The most weight (tokens) started in any half-open window [t, t + width); `starts`
    are (time, weight) in time order. As for counts, the windows beginning at a start are
    the only ones to check."""
    heaviest = 0
    end = 0
    weight = 0
    for first, (start, _) in enumerate(starts):
        while end < len(starts) and starts[end][0] < start + width:
            weight += starts[end][1]
            end += 1
        heaviest = max(heaviest, weight)
        weight -= starts[first][1]
    return heaviest


def test_the_window_helper_counts_a_half_open_minute() -> None:
    assert busiest_window([0.0, 30.0, 59.999, 60.0]) == 3
    assert busiest_window([0.0, 30.0, 59.999, 60.0, 61.0]) == 4
    assert busiest_window([0.0, 60.0, 120.0]) == 1
    assert busiest_window([]) == 0
    assert heaviest_window([(0.0, 5), (30.0, 3), (59.999, 2), (60.0, 7)]) == 12
    assert heaviest_window([(0.0, 5), (60.0, 7)]) == 7
    assert heaviest_window([]) == 0


def test_the_virtual_clock_runs_minutes_of_sleep_at_once() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(300)
        return loop.time()

    assert run_virtual(main) == pytest.approx(300.0, abs=0.01)


@pytest.mark.parametrize(
    ("requests_per_minute", "burst"), [(60, 8), (100, 10), (30, 1), (7, 3), (2, 1), (1000, 64)]
)
def test_shaped_limiter_never_admits_more_than_rpm_in_any_minute(
    requests_per_minute: int, burst: int
) -> None:
    async def main() -> list[float]:
        limiter = shaped_limiter(requests_per_minute, burst)
        return await greedy_starts(limiter.acquire, acquirers=5, seconds=300)

    starts = run_virtual(main)

    assert busiest_window(starts) <= requests_per_minute
    # ... and a greedy client gets close to the limit: the rule is not met by starving it.
    assert busiest_window(starts) >= min(requests_per_minute - 1, 0.95 * requests_per_minute)


def test_shaped_limiter_with_one_request_per_minute_spaces_them_a_minute_apart() -> None:
    async def main() -> list[float]:
        return await greedy_starts(shaped_limiter(1, burst=4).acquire, acquirers=3, seconds=300)

    starts = run_virtual(main)

    assert busiest_window(starts) == 1
    assert len(starts) >= 5


@pytest.mark.parametrize(("requests_per_minute", "burst"), [(60, 8), (120, 4), (600, 20)])
def test_shaped_limiter_long_run_rate_is_close_to_rpm_per_60_seconds(
    requests_per_minute: int, burst: int
) -> None:
    async def main() -> list[float]:
        return await greedy_starts(
            shaped_limiter(requests_per_minute, burst).acquire, acquirers=4, seconds=300
        )

    starts = run_virtual(main)

    # After the opening burst the bucket drains at (rpm - burst) / 60 per second.
    steady = [start for start in starts if start >= 60.0]
    steady_rate = len(steady) / 240.0
    target = requests_per_minute / 60.0
    assert (requests_per_minute - burst) / 60.0 * 0.98 <= steady_rate <= target
    assert len(starts) / 300.0 == pytest.approx(target, rel=0.1)


def test_a_plain_async_limiter_can_exceed_rpm_in_a_minute_which_is_why_it_is_shaped() -> None:
    requests_per_minute = 60

    async def main() -> list[float]:
        limiter = AsyncLimiter(requests_per_minute, 60)
        return await greedy_starts(limiter.acquire, acquirers=5, seconds=300)

    starts = run_virtual(main)

    # A full bucket at once, then the refill: nearly twice the limit in the first minute.
    assert busiest_window(starts) > requests_per_minute
    assert busiest_window(starts) >= 1.9 * requests_per_minute


def test_shaped_limiter_clamps_a_burst_at_or_above_rpm() -> None:
    # A burst as large as the limit would leave nothing for the steady rate.
    limiter = shaped_limiter(10, burst=50)
    assert limiter.max_rate <= 9
    assert limiter.max_rate / limiter.time_period > 0


# TokenLimiter ---------------------------------------------------------------------------


async def greedy_weighted_starts(
    limiter: TokenLimiter, amounts: Sequence[int], acquirers: int, seconds: float
) -> list[tuple[float, int]]:
    """(time, tokens) of `acquirers` tasks that each acquire the next amount of `amounts`
    (cycled) as soon as they may, for `seconds`."""
    loop = asyncio.get_running_loop()
    starts: list[tuple[float, int]] = []
    amount = itertools.cycle(amounts)

    async def acquirer() -> None:
        while loop.time() < seconds:
            tokens = next(amount)
            await limiter.acquire(tokens)
            starts.append((loop.time(), tokens))

    async with asyncio.TaskGroup() as group:
        for _ in range(acquirers):
            group.create_task(acquirer())
    return sorted(starts)


@pytest.mark.parametrize(
    ("tokens_per_minute", "largest"), [(1000, 100), (30_000, 3000), (250, 25), (37, 3), (2, 1)]
)
def test_the_token_limiter_lets_a_tenth_of_the_minute_through_at_once(
    tokens_per_minute: int, largest: int
) -> None:
    assert TokenLimiter(tokens_per_minute).largest_request == largest


@pytest.mark.parametrize(
    ("tokens_per_minute", "amounts"),
    [
        (1000, [37, 100, 1, 64, 99, 12]),
        (300, [30, 30, 30]),  # every request as large as the bucket
        (30_000, [250, 2998, 777]),
        (50, [1, 2, 5]),
        (1, [1]),
    ],
)
def test_no_60_second_window_holds_more_tokens_than_tokens_per_minute(
    tokens_per_minute: int, amounts: list[int]
) -> None:
    async def main() -> list[tuple[float, int]]:
        limiter = TokenLimiter(tokens_per_minute)
        return await greedy_weighted_starts(limiter, amounts, acquirers=6, seconds=300)

    starts = run_virtual(main)

    assert heaviest_window(starts) <= tokens_per_minute
    # ... and a greedy client gets most of it: the bound is not kept by starving it.
    assert heaviest_window(starts) >= 0.85 * tokens_per_minute - max(amounts)


def test_the_token_limiter_runs_close_to_tokens_per_minute_over_minutes() -> None:
    async def main() -> list[tuple[float, int]]:
        return await greedy_weighted_starts(TokenLimiter(6000), [120, 480, 300], 8, 600)

    starts = run_virtual(main)

    total = sum(tokens for _, tokens in starts)
    # After the first burst the bucket drains at nine tenths of the limit.
    assert 0.9 * 6000 * 10 * 0.98 <= total <= 6000 * 10 + 600


def test_a_request_above_the_largest_is_refused_at_once_by_the_limiter() -> None:
    async def main() -> None:
        limiter = TokenLimiter(1000)
        await limiter.acquire(100)  # the largest: admitted
        with pytest.raises(UnembeddableTextError, match=r"tokens_per_minute = 1000.*at most 100"):
            await limiter.acquire(101)

    run_virtual(main)


# RequestGate ----------------------------------------------------------------------------


async def hold_slots(
    gate: RequestGate,
    tasks: int,
    hold: float,
    record: Callable[[float], None] | None = None,
) -> tuple[list[float], int]:
    """`tasks` tasks each take one slot for `hold` seconds; returns start times and max in flight."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    in_flight = 0
    most = 0

    async def request() -> None:
        nonlocal in_flight, most
        async with gate.slot():
            in_flight += 1
            most = max(most, in_flight)
            starts.append(loop.time())
            if record is not None:
                record(loop.time())
            await asyncio.sleep(hold)
            in_flight -= 1

    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(request())
    return sorted(starts), most


@pytest.mark.parametrize("max_concurrent", [1, 3, 8])
def test_gate_never_has_more_than_max_concurrent_requests_in_flight(max_concurrent: int) -> None:
    async def main() -> tuple[list[float], int, Any]:
        gate = RequestGate(max_concurrent, requests_per_minute=None)
        starts, most = await hold_slots(gate, tasks=30, hold=1.0)
        return starts, most, gate.statistics()

    starts, most, statistics = run_virtual(main)

    assert most == max_concurrent
    assert statistics.max_in_flight == max_concurrent
    assert statistics.requests_started == 30
    assert statistics.in_flight == 0
    # Slots free up as requests finish: 30 one-second requests take ceil(30 / cap) seconds.
    assert starts[-1] == pytest.approx(-(-30 // max_concurrent) - 1, abs=0.01)


def test_gate_without_a_rate_starts_everything_at_once() -> None:
    async def main() -> list[float]:
        gate = RequestGate(max_concurrent=1000, requests_per_minute=None)
        starts, _ = await hold_slots(gate, tasks=1000, hold=0.0)
        return starts

    starts = run_virtual(main)

    assert len(starts) == 1000
    assert starts[-1] < 0.01


def test_gate_with_a_rate_keeps_every_minute_within_it() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=5, requests_per_minute=40)
        starts: list[float] = []

        async def request() -> None:
            async with gate.slot():
                starts.append(loop.time())
                await asyncio.sleep(0.5)

        await greedy_starts(request, acquirers=12, seconds=300)
        return sorted(starts)

    starts = run_virtual(main)

    assert busiest_window(starts) <= 40
    assert len(starts) >= 0.9 * 40 * 5


def test_gate_with_a_token_limit_keeps_every_minute_within_it() -> None:
    async def main() -> tuple[list[tuple[float, int]], GateStatistics]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=4, requests_per_minute=None, tokens_per_minute=600)
        starts: list[tuple[float, int]] = []
        amount = itertools.cycle([60, 13, 45, 1, 30])

        async def request() -> None:
            tokens = next(amount)
            async with gate.slot(tokens):
                starts.append((loop.time(), tokens))
                await asyncio.sleep(0.3)

        await greedy_starts(request, acquirers=10, seconds=300)
        return sorted(starts), gate.statistics()

    starts, statistics = run_virtual(main)

    assert 0.85 * 600 - 60 <= heaviest_window(starts) <= 600
    assert statistics.tokens_started == sum(tokens for _, tokens in starts)
    assert statistics.requests_started == len(starts)


def test_gate_refuses_a_request_above_the_token_limit_before_it_takes_a_slot() -> None:
    async def main() -> tuple[GateStatistics, float]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=1, requests_per_minute=10, tokens_per_minute=600)
        assert gate.largest_request == 60
        async with gate.slot(60):  # holds the only slot: a refusal must not wait for it
            with pytest.raises(UnembeddableTextError, match="gemini.tokens_per_minute"):
                async with gate.slot(61):
                    pass
            refused_at = loop.time()
        return gate.statistics(), refused_at

    statistics, refused_at = run_virtual(main)

    assert refused_at < 0.01
    assert statistics.requests_started == 1
    assert statistics.tokens_started == 60


def test_gate_without_a_token_limit_takes_any_request_and_has_no_largest() -> None:
    async def main() -> GateStatistics:
        gate = RequestGate(max_concurrent=2, requests_per_minute=None)
        assert gate.largest_request is None
        async with gate.slot(10**9):
            pass
        return gate.statistics()

    assert run_virtual(main).tokens_started == 10**9


@pytest.mark.parametrize("max_concurrent", [1, 4])
def test_gate_spaces_request_starts_by_min_interval(max_concurrent: int) -> None:
    async def main() -> list[float]:
        gate = RequestGate(max_concurrent, requests_per_minute=None, min_interval=0.25)
        starts, _ = await hold_slots(gate, tasks=20, hold=0.1)
        return starts

    starts = run_virtual(main)

    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.25 - 1e-9
    # The spacing is the only brake here: starts follow each other at exactly that pace.
    assert starts[-1] == pytest.approx(19 * 0.25, abs=0.01)


def test_a_429_pauses_every_later_slot_of_every_task_until_retry_after() -> None:
    async def main() -> tuple[float, list[float], Any]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=4, requests_per_minute=None)
        async with gate.slot():
            await asyncio.sleep(1.0)
            throttled_at = loop.time()
            gate.throttled(retry_after=30.0)
        # Other tasks, which never saw the 429, ask for slots afterwards.
        starts, _ = await hold_slots(gate, tasks=6, hold=0.0)
        return throttled_at, starts, gate.statistics()

    throttled_at, starts, statistics = run_virtual(main)

    assert min(starts) >= throttled_at + 30.0
    assert statistics.throttled == 1
    assert statistics.pause_seconds > 0


def test_a_429_pauses_tasks_already_queued_for_a_slot() -> None:
    async def main() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=1, requests_per_minute=None)
        throttled_at = 0.0

        async def first() -> None:
            nonlocal throttled_at
            async with gate.slot():
                await asyncio.sleep(1.0)
                throttled_at = loop.time()
                gate.throttled(retry_after=10.0)

        async with asyncio.TaskGroup() as group:
            group.create_task(first())
            await asyncio.sleep(0)  # `first` holds the only slot; the others queue behind it
            others = group.create_task(hold_slots(gate, tasks=3, hold=0.0))
        starts, _ = others.result()
        return throttled_at, starts

    throttled_at, starts = run_virtual(main)

    assert throttled_at == pytest.approx(1.0, abs=0.01)
    assert min(starts) >= throttled_at + 10.0


def test_a_429_pauses_tasks_already_waiting_for_their_spacing() -> None:
    # Three requests reserve starts at 0, 1 and 2 s. At 0.5 s the first is answered 429
    # with a 5 s retry delay: the whole client waits, so nothing else starts before 5.5 s.
    async def main() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=3, requests_per_minute=None, min_interval=1.0)
        throttled_at = 0.0

        def throttle_on_first_start(started: float) -> None:
            nonlocal throttled_at
            if not throttled_at:
                loop.call_later(0.5, lambda: gate.throttled(retry_after=5.0))
                throttled_at = started + 0.5

        starts, _ = await hold_slots(gate, tasks=3, hold=0.0, record=throttle_on_first_start)
        return throttled_at, starts

    throttled_at, starts = run_virtual(main)

    assert starts[0] < 0.01
    assert min(starts[1:]) >= throttled_at + 5.0, f"started during the 429 pause: {starts}"


def test_a_429_pauses_tasks_already_waiting_in_the_rate_limiter() -> None:
    # rpm 2 with one slot: the limiter admits one start now, the next 60 s later. A 429
    # answered at 1 s asking for 120 s must hold that second start until 121 s.
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        gate = RequestGate(max_concurrent=2, requests_per_minute=2)
        loop.call_at(1.0, lambda: gate.throttled(retry_after=120.0))
        starts, _ = await hold_slots(gate, tasks=2, hold=0.0)
        return starts

    starts = run_virtual(main)

    assert starts[0] < 0.01
    assert starts[1] >= 121.0, f"started during the 429 pause: {starts}"


def test_a_429_without_retry_after_widens_the_spacing_and_successes_narrow_it_again() -> None:
    async def main() -> tuple[list[float], list[float]]:
        gate = RequestGate(max_concurrent=1, requests_per_minute=None)
        async with gate.slot():
            pass
        gate.throttled(retry_after=None)
        widened, _ = await hold_slots(gate, tasks=5, hold=0.0)
        for _ in range(100):
            gate.succeeded()
        narrowed, _ = await hold_slots(gate, tasks=5, hold=0.0)
        return widened, narrowed

    widened, narrowed = run_virtual(main)

    assert min(b - a for a, b in itertools.pairwise(widened)) >= 0.05
    assert narrowed[-1] - narrowed[0] < 0.05


def test_gate_statistics_count_starts_and_time_spent_waiting() -> None:
    async def main() -> GateStatistics:
        gate = RequestGate(max_concurrent=1, requests_per_minute=None, min_interval=0.03)

        async def request() -> None:
            async with gate.slot():
                await asyncio.sleep(0.03)

        await asyncio.gather(*(request() for _ in range(3)))
        gate.throttled(retry_after=0.05)
        await request()
        return gate.statistics()

    statistics = run_virtual(main)

    assert statistics.requests_started == 4
    assert statistics.max_in_flight == 1
    assert statistics.in_flight == 0
    assert statistics.throttled == 1
    # Someone queued for the one slot while the first two 30 ms requests ran.
    assert statistics.slot_wait_seconds == pytest.approx(0.06, abs=1e-3)
    assert statistics.pause_seconds == pytest.approx(0.05)
    # The fourth request waited out the whole pause (the spacing had long passed).
    assert statistics.limiter_wait_seconds == pytest.approx(0.05, abs=1e-3)


def test_limiter_wait_is_the_time_someone_waited_not_the_sum_of_everyones_waits() -> None:
    async def main() -> GateStatistics:
        # Five requests at once, one start a second: they wait 0, 1, 2, 3 and 4 seconds,
        # 10 s in all, but someone was waiting for only 4 s of wall time.
        gate = RequestGate(max_concurrent=10, requests_per_minute=None, min_interval=1.0)
        await hold_slots(gate, tasks=5, hold=0.0)
        return gate.statistics()

    statistics = run_virtual(main)

    assert statistics.requests_started == 5
    assert statistics.limiter_wait_seconds == pytest.approx(4.0, abs=1e-3)
    assert statistics.slot_wait_seconds == pytest.approx(0.0, abs=1e-3)


def test_limiter_wait_counts_separate_waits_apart_and_no_time_nobody_waited() -> None:
    async def main() -> GateStatistics:
        gate = RequestGate(max_concurrent=10, requests_per_minute=None, min_interval=2.0)
        await hold_slots(gate, tasks=2, hold=0.0)  # the second waits 2 s
        await asyncio.sleep(10.0)  # nobody waits
        await hold_slots(gate, tasks=3, hold=0.0)  # the third waits 4 s, overlapping the second
        return gate.statistics()

    statistics = run_virtual(main)

    assert statistics.limiter_wait_seconds == pytest.approx(2.0 + 4.0, abs=1e-3)


def test_slot_wait_is_the_time_someone_queued_for_a_slot() -> None:
    async def main() -> GateStatistics:
        # One slot, four one-second requests: the queue is never empty for 3 s, though
        # the three queued requests waited 1 + 2 + 3 = 6 s between them.
        gate = RequestGate(max_concurrent=1, requests_per_minute=None)
        await hold_slots(gate, tasks=4, hold=1.0)
        return gate.statistics()

    statistics = run_virtual(main)

    assert statistics.slot_wait_seconds == pytest.approx(3.0, abs=1e-3)
    assert statistics.limiter_wait_seconds == pytest.approx(0.0, abs=1e-3)


def test_overlapping_429_pauses_count_once() -> None:
    async def main() -> tuple[GateStatistics, list[float]]:
        gate = RequestGate(max_concurrent=4, requests_per_minute=None)
        gate.throttled(retry_after=2.0)  # requests in flight come back 429 together
        gate.throttled(retry_after=2.0)
        await asyncio.sleep(1.0)
        gate.throttled(retry_after=2.0)  # a later one pushes the pause out to 3 s
        starts, _ = await hold_slots(gate, tasks=3, hold=0.0)
        return gate.statistics(), starts

    statistics, starts = run_virtual(main)

    assert statistics.throttled == 3
    assert statistics.pause_seconds == pytest.approx(3.0)
    # The pause ends at 3 s; then the spacing the 429s widened (0.1 s) spreads the starts.
    assert starts == pytest.approx([3.0, 3.1, 3.2], abs=1e-3)
    # Three requests waited from 1 s, side by side, until the last went at 3.2 s:
    # 2.2 s of limiter wait, not 2 + 2.1 + 2.2.
    assert statistics.limiter_wait_seconds == pytest.approx(2.2, abs=1e-3)


def test_gate_statistics_are_frozen() -> None:
    statistics = RequestGate(max_concurrent=1, requests_per_minute=None).statistics()

    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.throttled = 1  # type: ignore[misc]


def test_gate_statistics_are_a_snapshot_not_a_live_view() -> None:
    async def main() -> tuple[int, int]:
        gate = RequestGate(max_concurrent=2, requests_per_minute=None)
        before = gate.statistics()
        await hold_slots(gate, tasks=3, hold=0.0)
        return before.requests_started, gate.statistics().requests_started

    before, after = run_virtual(main)

    assert (before, after) == (0, 3)
