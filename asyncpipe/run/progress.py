"""Progress of the theme tasks: a log line at a steady interval, and a bar on a terminal.

The log line has one fixed form that people and log scrapers can rely on:

    Progress: 40/320 (12.5%) - 35 successful, 5 failed (rate: 8.2 tasks/sec)

When stderr is a terminal a live bar (tqdm) shows the same counts; in CI and
other pipes only the log lines appear. The reporter only counts and prints;
it never touches the work itself.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0


def progress_line(done: int, total: int, successful: int, failed: int, seconds: float) -> str:
    percent = 100.0 * done / total if total else 100.0
    rate = done / seconds if seconds > 0 else 0.0
    return (
        f"Progress: {done}/{total} ({percent:.1f}%) - {successful} successful, "
        f"{failed} failed (rate: {rate:.1f} tasks/sec)"
    )


class ProgressReporter:
    """`async with ProgressReporter(total): ... reporter.record(ok)`."""

    def __init__(
        self,
        total: int,
        interval: float = DEFAULT_INTERVAL,
        stream: IO[str] | None = None,
        bar: bool | None = None,
    ) -> None:
        self._total = total
        self._interval = interval
        self._stream = stream if stream is not None else sys.stderr
        self._want_bar = bar if bar is not None else _is_terminal(self._stream)
        self._bar: Any = None
        self._successful = 0
        self._failed = 0
        self._started = time.perf_counter()
        self._ticker: asyncio.Task[None] | None = None

    def add_total(self, more: int) -> None:
        """More tasks joined the run (spare themes replacing failed ones)."""
        self._total += more
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.refresh()

    @property
    def done(self) -> int:
        return self._successful + self._failed

    def record(self, successful: bool) -> None:
        if successful:
            self._successful += 1
        else:
            self._failed += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(ok=self._successful, failed=self._failed, refresh=False)

    def line(self) -> str:
        return progress_line(
            self.done,
            self._total,
            self._successful,
            self._failed,
            time.perf_counter() - self._started,
        )

    async def __aenter__(self) -> ProgressReporter:
        self._started = time.perf_counter()
        if self._want_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self._total, unit="theme", file=self._stream, leave=False)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ticker is not None:
            # Not awaited: awaiting could swallow a cancellation meant for our caller.
            self._ticker.cancel()
        if self._bar is not None:
            self._bar.close()
        log.info("%s", self.line())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            log.info("%s", self.line())


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
