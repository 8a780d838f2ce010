"""A second event loop, on a thread of its own, that reads the HTTP answers.

At 3072 dimensions an answer is 4.3 MB of JSON, and reading it through httpx
(h11's parsing and buffer copies, anyio's timeout around each read) costs
about 17 ms of CPU in some 130 reads of 32 KB. On the run's loop that was most
of its loop-lag p99 (51 ms in `make bench`): the limiter, the scheduler and the
scoring results waited behind a body being read. On this thread the same work
runs in pieces: while the run's loop waits for the GIL, the reader gives it up
at every switch interval (5 ms), so the run's loop keeps its time. The bytes
read are Python bytes shared by both threads, never copied between them.

`RequestThread.run(coroutine)` runs a coroutine there and awaits its result on
the caller's loop. Its exceptions come back as they are; cancelling the caller
cancels the coroutine on the thread (asyncio chains the two futures). Whatever
the coroutine uses (an httpx client and its connections) must be used only
there: `RestTransport` uses and closes its client only inside `run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class RequestThread:
    """An event loop on a daemon thread, started by the first `run`, stopped by `aclose`."""

    def __init__(self, name: str = "asyncpipe-requests") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result, run to completion on the thread's loop."""
        loop = self._started()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    async def aclose(self) -> None:
        """Stop the loop (its unfinished tasks are cancelled first) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        await self._stopped(loop)
        await asyncio.to_thread(thread.join)

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            # A daemon: a run that stops without closing its provider (a crash) still exits.
            thread = threading.Thread(target=_serve, args=(loop,), name=self._name, daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    @staticmethod
    async def _stopped(loop: asyncio.AbstractEventLoop) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(cancel_the_rest(), loop))
        loop.call_soon_threadsafe(loop.stop)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
