"""The lag monitor sees a blocked event loop, and little lag on an idle one."""

from __future__ import annotations

import asyncio
import time

import pytest

from asyncpipe.run.loop_lag import LoopLagMonitor


@pytest.mark.asyncio
async def test_a_loop_blocked_by_cpu_work_shows_its_lag() -> None:
    async with LoopLagMonitor(interval=0.005) as lag:
        await asyncio.sleep(0.05)
        time.sleep(0.08)  # CPU-bound work on the loop, as decoding or scoring would be
        await asyncio.sleep(0.05)
    figures = lag.statistics()
    assert figures.samples >= 5
    assert figures.max_ms is not None and figures.max_ms >= 60


@pytest.mark.asyncio
async def test_an_idle_loop_shows_small_lag() -> None:
    async with LoopLagMonitor(interval=0.005) as lag:
        await asyncio.sleep(0.2)
    figures = lag.statistics()
    assert figures.samples >= 10
    assert figures.p50_ms is not None and figures.p50_ms < 20
    assert figures.to_json()["loop_lag_p99_ms"] == figures.p99_ms


def test_no_samples_give_no_figures_and_the_json_leaves_them_out() -> None:
    figures = LoopLagMonitor().statistics()
    assert figures.p99_ms is None
    assert figures.to_json() == {"loop_lag_samples": 0}
