"""How late the event loop runs: a sampler of scheduling lag while a run works.

A task asks to wake every `interval` seconds and records how much later than
asked it actually woke. A loop that stays responsive (no CPU-heavy work on it,
scoring in the process pool) shows a lag of a millisecond or two; decoding a
large answer or scoring a puzzle on the loop would show as tens of milliseconds.
The figures go into the run statistics and `make bench`.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass
from types import TracebackType

import numpy as np

DEFAULT_INTERVAL = 0.01


@dataclass(frozen=True)
class LoopLagStatistics:
    """How late the loop ran while the monitor was open, in milliseconds."""

    #: Wake-ups measured; 0 when the monitor never got to run.
    samples: int
    #: Median lag of a wake-up; None when there were no samples.
    p50_ms: float | None = None
    #: 99th percentile: the figure to watch, one slow decode or score shows here.
    p99_ms: float | None = None
    #: The single longest stall.
    max_ms: float | None = None

    def to_json(self) -> dict[str, float | int]:
        """The run-statistics keys; percentiles of no samples are left out."""
        figures: dict[str, float | int] = {"loop_lag_samples": self.samples}
        for key, value in (
            ("loop_lag_p50_ms", self.p50_ms),
            ("loop_lag_p99_ms", self.p99_ms),
            ("loop_lag_max_ms", self.max_ms),
        ):
            if value is not None:
                figures[key] = value
        return figures


class LoopLagMonitor:
    """`async with LoopLagMonitor() as lag: ...; lag.statistics()`."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self._interval = interval
        # Doubles in one array, not a list of floats: 100 wake-ups a second for an hour
        # are 2.9 MB here, 11.5 MB as Python floats.
        self._lags = array("d")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()  # not awaited: that could swallow our caller's cancellation

    def statistics(self) -> LoopLagStatistics:
        lags = np.asarray(self._lags, dtype=np.float64) * 1000
        if lags.size == 0:
            return LoopLagStatistics(samples=0)
        return LoopLagStatistics(
            samples=int(lags.size),
            p50_ms=round(float(np.percentile(lags, 50)), 2),
            p99_ms=round(float(np.percentile(lags, 99)), 2),
            max_ms=round(float(lags.max()), 2),
        )

    async def _sample(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self._interval)
            self._lags.append(max(0.0, time.perf_counter() - asked - self._interval))
