"""SIGINT and SIGTERM: the first asks the run to wind down, a second one ends it at once.

The older pipeline ignored SIGTERM and then overwrote its output with an empty
file. Here one `Shutdown` object, installed by the command line for the whole
invocation, turns signals into one of three outcomes, depending on when they come:

- Before the embedding starts (loading the index, the candidate search), nothing
  is in flight and nothing would be lost: the first signal raises `Interrupted`
  and the command exits at once.
- From then on (`deferring()`), the first signal is only recorded. The pipeline
  sees `requested`, starts no new theme, lets the work in flight run until
  `deadline` (`concurrency.shutdown_grace_seconds` after the signal; `guard`
  does this), then writes the puzzles completed so far, marked partial.
- A second signal, at any time, ends the process where it stands: the scoring
  workers are killed first, so no child process outlives it. The embedding
  store is SQLite: what it committed stays, whatever was mid-write rolls back.

Exit codes follow the shell's convention, 128 + the signal number: 130 for
SIGINT, 143 for SIGTERM.

The grace is timed on the running event loop's clock, like every wait of the
run, so a test loop with a virtual clock times it too. A signal that comes
while no loop runs is dated on `time.monotonic` (the clock asyncio's own loop
reads) and carried onto the loop's clock when `watching()` binds to it.

The handlers are plain `signal.signal` handlers, in force in both the
synchronous and the asyncio parts of a run; `asyncio.run` leaves a custom
SIGINT handler alone. Inside the loop the handler only schedules the event's
`set` with `call_soon_threadsafe`, the way asyncio's own signal handling does.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code_for(signal_number: int) -> int:
    """The shell's code for a process ended by this signal: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signal_number


class Interrupted(KeyboardInterrupt):
    """A signal came while nothing was in flight: the command stops where it is.

    A KeyboardInterrupt, so it travels like Ctrl-C always has: through task
    groups and `finally` blocks, past `except Exception`.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.signal_number)


class Shutdown:
    """What the signals asked for, readable from synchronous and asynchronous code alike."""

    def __init__(self, grace_seconds: float = 10.0) -> None:
        self.grace_seconds = grace_seconds
        #: The first signal received, if any.
        self.signal_number: int | None = None
        #: When the first signal came, on the loop's clock (or, with no loop running yet,
        #: on `time.monotonic` in `_received_before_loop`, until `watching()` converts it).
        self._received_at: float | None = None
        self._received_before_loop: float | None = None
        self._deferring = False
        #: What a deferred first signal is answered with in the log (`announcing`).
        self._announcement: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.signal_number is None else signal.Signals(self.signal_number).name

    @property
    def exit_code(self) -> int | None:
        return None if self.signal_number is None else exit_code_for(self.signal_number)

    def remaining(self) -> float:
        """Seconds of grace left for the work in flight (0 once it is spent)."""
        if self._received_at is None:
            return self.grace_seconds
        now = asyncio.get_running_loop().time()
        return max(0.0, self._received_at + self.grace_seconds - now)

    @contextmanager
    def installed(self) -> Iterator[Shutdown]:
        """Handle SIGINT and SIGTERM for the life of the block; the previous handlers after."""
        previous = {number: signal.getsignal(number) for number in SIGNALS}
        for number in SIGNALS:
            signal.signal(number, self._on_signal)
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """From here on, a first signal is recorded for the pipeline to act on, not raised."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    @contextmanager
    def announcing(self, announcement: str) -> Iterator[None]:
        """Within the block, a deferred first signal is logged as "NAME received: " and
        `announcement`, in place of the grace's words (a wait with no work in flight)."""
        previous, self._announcement = self._announcement, announcement
        try:
            yield
        finally:
            self._announcement = previous

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Bind to the running loop, so a signal wakes whatever waits in `guard`."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self._received_before_loop is not None:
            ago = time.monotonic() - self._received_before_loop
            self._received_at = self._loop.time() - ago
            self._received_before_loop = None
        if self.requested:
            self._event.set()
        try:
            yield
        finally:
            self._loop = None
            self._event = None

    async def guard(
        self,
        work: asyncio.Future[Any],
        on_stop: Callable[[], None] = lambda: None,
        on_deadline: Callable[[], None] | None = None,
    ) -> None:
        """Wait for `work`; after a signal, give it the grace left, then end it.

        `on_stop` runs when the signal comes (stop feeding the work), `on_deadline`
        when the grace is spent (cancel what is in flight; by default `work` is
        cancelled). Returns once `work` is done, whatever its outcome; the caller
        reads the results it recorded along the way.
        """
        if self._event is None:
            raise RuntimeError("Shutdown.guard used outside `async with shutdown.watching():`")
        signalled = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({work, signalled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signalled.cancel()
        if not work.done():
            on_stop()
            await asyncio.wait({work}, timeout=self.remaining())
        if not work.done():
            log.warning("Grace period over: cancelling the work still in flight")
            (on_deadline or work.cancel)()
        # Whatever it ends with (results, cancellation) is the caller's to read.
        await asyncio.wait({work})

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less if a signal comes first: True if one came (or had come).

        For waits with nothing in flight to wind down, such as the polls of a Batch API
        job: the caller acts on the signal at once."""
        if self._event is None:
            raise RuntimeError("Shutdown.sleep used outside `async with shutdown.watching():`")
        if self.requested:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _on_signal(self, signal_number: int, frame: FrameType | None) -> None:
        name = signal.Signals(signal_number).name
        if self.requested:
            _exit_now(name, exit_code_for(signal_number))
        self.signal_number = signal_number
        try:
            self._received_at = asyncio.get_running_loop().time()
        except RuntimeError:  # in the synchronous part of the run
            self._received_before_loop = time.monotonic()
        if not self._deferring:
            log.warning("%s received: stopping", name)
            raise Interrupted(signal_number)
        if self._announcement is not None:
            log.warning("%s received: %s", name, self._announcement)
        else:
            log.warning(
                "%s received: no new work is started; the work in flight gets up to %.0f s, "
                "then the puzzles completed so far are written. Send it again to stop at once.",
                name,
                self.grace_seconds,
            )
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)


def _exit_now(name: str, code: int) -> None:
    """The second signal: kill the scoring workers, then leave without unwinding anything."""
    log.warning("%s received again: exiting now; finished themes stay recorded", name)
    for child in multiprocessing.active_children():
        child.kill()
    for child in multiprocessing.active_children():
        child.join(timeout=2.0)
    logging.shutdown()
    os._exit(code)
