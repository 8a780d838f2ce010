"""Shutdown: what a first and a second SIGINT/SIGTERM do, with real signals sent to a real process.

The whole-run behaviour (exit codes, partial outputs, no process left) is in
test_interrupt_runs.py; this file checks the pieces: raising before the work
starts, recording once it has, the grace `guard` gives work in flight, and the
immediate exit of a second signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asyncpipe.run.interrupt import Interrupted, Shutdown, exit_code_for
from tests.support import FINAL, REPO, on_virtual_clock, run_virtual


def test_exit_codes_follow_the_shell_convention() -> None:
    assert exit_code_for(signal.SIGINT) == 130
    assert exit_code_for(signal.SIGTERM) == 143


def test_handlers_are_installed_for_the_block_and_restored_after() -> None:
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with Shutdown().installed():
        assert signal.getsignal(signal.SIGTERM) not in (before[signal.SIGTERM], signal.SIG_DFL)
    assert {number: signal.getsignal(number) for number in before} == before


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_before_the_work_starts_a_signal_stops_the_command(number: int) -> None:
    shutdown = Shutdown()
    with pytest.raises(Interrupted) as stopped, shutdown.installed():
        os.kill(os.getpid(), number)
        time.sleep(5)  # the handler raises long before this ends

    assert stopped.value.exit_code == 128 + number
    assert shutdown.signal_number == number


def test_while_deferring_a_signal_is_recorded_not_raised() -> None:
    shutdown = Shutdown()
    with shutdown.installed(), shutdown.deferring():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs on the main thread, between two bytecodes

    assert shutdown.requested
    assert shutdown.signal_name == "SIGTERM"
    assert shutdown.exit_code == 143


@on_virtual_clock
async def test_guard_gives_work_the_grace_then_ends_it() -> None:
    shutdown = Shutdown(grace_seconds=30.0)
    calls: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    work = asyncio.ensure_future(asyncio.sleep(3600))

    with shutdown.installed(), shutdown.deferring():
        async with shutdown.watching():
            signalled_at = loop.time() + 5.0
            loop.call_at(signalled_at, os.kill, os.getpid(), signal.SIGINT)
            await shutdown.guard(
                work,
                on_stop=lambda: calls.append(("stop", loop.time())),
                on_deadline=lambda: (calls.append(("deadline", loop.time())), work.cancel()),
            )

    assert [name for name, _ in calls] == ["stop", "deadline"]
    # On the virtual clock: woken by the signal, not by the work, and given exactly the grace.
    assert calls[0][1] == pytest.approx(signalled_at, abs=1e-3)
    assert calls[1][1] - signalled_at == pytest.approx(30.0, abs=1e-3)
    assert work.cancelled()


@on_virtual_clock
async def test_sleep_ends_when_a_signal_comes_and_says_so() -> None:
    shutdown = Shutdown()
    loop = asyncio.get_running_loop()
    with shutdown.installed(), shutdown.deferring():
        async with shutdown.watching():
            started = loop.time()
            quiet = await shutdown.sleep(2.0)
            slept = loop.time() - started
            loop.call_at(loop.time() + 3.0, os.kill, os.getpid(), signal.SIGTERM)
            woken = await shutdown.sleep(600.0)
            woken_after = loop.time() - started - slept
            already = await shutdown.sleep(600.0)  # a signal that came before: no wait
            total = loop.time() - started

    assert (quiet, woken, already) == (False, True, True)
    assert slept == pytest.approx(2.0, abs=1e-3)
    assert woken_after == pytest.approx(3.0, abs=1e-3)
    assert total == pytest.approx(5.0, abs=1e-3)


@on_virtual_clock
async def test_an_announced_wait_logs_its_own_words_for_the_first_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutdown = Shutdown()
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING), shutdown.installed(), shutdown.deferring():
        with shutdown.announcing("the wait on the batch jobs ends"):
            async with shutdown.watching():
                loop.call_at(loop.time() + 1.0, os.kill, os.getpid(), signal.SIGTERM)
                assert await shutdown.sleep(60.0)
    assert caplog.messages == ["SIGTERM received: the wait on the batch jobs ends"]


@on_virtual_clock
async def test_guard_lets_work_that_ends_within_the_grace_finish() -> None:
    shutdown = Shutdown(grace_seconds=10.0)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def winds_down() -> str:
        await stopping.wait()
        await asyncio.sleep(9.9)  # just inside the grace
        return "finished"

    work = asyncio.ensure_future(winds_down())
    with shutdown.installed(), shutdown.deferring():
        async with shutdown.watching():
            loop.call_later(1.0, os.kill, os.getpid(), signal.SIGTERM)
            await shutdown.guard(work, on_stop=stopping.set, on_deadline=lambda: None)

    assert work.result() == "finished"
    assert loop.time() == pytest.approx(10.9, abs=1e-3)


@on_virtual_clock
async def test_guard_without_a_signal_just_waits_for_the_work() -> None:
    shutdown = Shutdown(grace_seconds=0.0)
    work = asyncio.ensure_future(asyncio.sleep(600, result="done"))
    async with shutdown.watching():
        await shutdown.guard(work, on_stop=lambda: pytest.fail("no signal was sent"))
    assert work.result() == "done"


@on_virtual_clock
async def test_a_signal_before_the_loop_is_watched_still_stops_the_next_guard() -> None:
    shutdown = Shutdown(grace_seconds=0.0)
    with shutdown.installed(), shutdown.deferring():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        work = asyncio.ensure_future(asyncio.sleep(30))
        async with shutdown.watching():
            await shutdown.guard(work)
    assert work.cancelled()


def test_a_signal_before_any_loop_runs_starts_the_grace_then_not_when_the_loop_starts() -> None:
    shutdown = Shutdown(grace_seconds=30.0)

    async def guarded() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(asyncio.sleep(3600))
        async with shutdown.watching():
            left = shutdown.remaining()
            await shutdown.guard(work)
        return left, loop.time()

    with shutdown.installed(), shutdown.deferring():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # real time passes before the loop (virtual, from 0) starts
        left, ended = run_virtual(guarded)

    # The time spent before the loop counts against the grace, on the loop's clock.
    assert 29.0 < left <= 29.8
    assert ended == pytest.approx(left, abs=1e-3)


_SECOND_SIGNAL = """
import multiprocessing, os, signal, sys, time
from asyncpipe.run.interrupt import Shutdown

def sleep_long():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=sleep_long)
    child.start()
    print(child.pid, flush=True)
    shutdown = Shutdown(grace_seconds=60)
    with shutdown.installed(), shutdown.deferring():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    sys.exit(0)  # never reached: the second signal exits at once
"""


def test_a_second_signal_exits_at_once_and_kills_the_child_processes(tmp_path: Path) -> None:
    script = tmp_path / "second_signal.py"
    script.write_text(textwrap.dedent(_SECOND_SIGNAL), encoding="utf-8")
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started

    assert finished.returncode == 143, finished.stderr
    assert "received again: exiting now" in finished.stderr
    assert elapsed < 20  # neither the 60 s grace nor the 30 s sleep
    child = int(finished.stdout.split()[0])
    assert not _alive(child), "the child process outlived the second signal"


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return False
        if state == "Z":  # reaped by nobody yet, but dead
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_index_loads_stops_the_run_at_once(workdir: Path, number: int) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "asyncpipe", "run", "--count", "2", "--provider", "glove"],
        cwd=workdir,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert run.stderr is not None
    first_line = run.stderr.readline()  # logged once the handlers are in, before the stages
    run.send_signal(number)
    rest = run.stderr.read()
    code = run.wait(timeout=60)

    assert "params from" in first_line, first_line + rest
    assert code == 128 + number, rest
    assert f"{signal.Signals(number).name} received: stopping" in rest
    assert "Traceback" not in rest
    assert not (workdir / FINAL).exists()
