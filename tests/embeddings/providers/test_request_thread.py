"""RequestThread: coroutines run on a loop of their own thread, awaited from the caller's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asyncpipe.embeddings.providers.request_thread import RequestThread


def request_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "asyncpipe-requests"]


@pytest.mark.asyncio
async def test_a_coroutine_runs_on_the_thread_and_its_result_comes_back() -> None:
    requests = RequestThread()

    async def where() -> tuple[str, asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        return threading.current_thread().name, asyncio.get_running_loop()

    try:
        name, loop = await requests.run(where())
    finally:
        await requests.aclose()

    assert name == "asyncpipe-requests"
    assert loop is not asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_an_exception_comes_back_as_it_was_raised() -> None:
    requests = RequestThread()

    class Refused(Exception):
        pass

    async def refuse() -> None:
        raise Refused("no")

    try:
        with pytest.raises(Refused, match="no"):
            await requests.run(refuse())
    finally:
        await requests.aclose()


@pytest.mark.asyncio
async def test_cancelling_the_caller_cancels_the_coroutine_on_the_thread() -> None:
    requests = RequestThread()
    started = threading.Event()
    cancelled = threading.Event()

    async def long_read() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(requests.run(long_read()))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    try:
        assert await asyncio.to_thread(cancelled.wait, 5)
    finally:
        await requests.aclose()


@pytest.mark.asyncio
async def test_aclose_cancels_what_is_left_and_joins_the_thread() -> None:
    before = len(request_threads())
    requests = RequestThread()
    cancelled = threading.Event()

    async def forgotten() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def start_and_leave() -> None:
        asyncio.get_running_loop().create_task(forgotten())

    await requests.run(start_and_leave())
    assert len(request_threads()) == before + 1
    await requests.aclose()

    assert cancelled.is_set()
    assert len(request_threads()) == before


@pytest.mark.asyncio
async def test_no_thread_is_started_before_the_first_run_and_aclose_is_then_a_no_op() -> None:
    before = len(request_threads())
    requests = RequestThread()
    await requests.aclose()

    assert len(request_threads()) == before
