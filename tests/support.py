"""Helpers for tests: where the repository and the shared reference inputs are, the CLI,
and an event loop on a virtual clock for timing tests that never sleep."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import yaml

_Result = TypeVar("_Result")

REPO = Path(__file__).resolve().parents[1]
#: Inputs that users of the older pipeline have; copied into a test's folder, never edited.
REFERENCE = REPO / "tests" / "fixtures" / "reference"

# Where a run with the default params.yaml writes, relative to its workdir.
SELECTED = Path("data/themes/selected_themes.json")
CANDIDATES = Path("data/candidates/candidate_words.json")
FINAL = Path("data/outputs/final_puzzles.json")
PUZZLE_SETS = Path("data/outputs/puzzle_sets.json")
METADATA = Path("data/outputs/puzzle_metadata.json")
ANALYSIS = Path("reports/embedding_analysis.json")
ALL_TABLE = Path("data/cache/all_embeddings.csv")
PUZZLE_TABLE = Path("data/embeddings/puzzle_embeddings.csv")
STORE = Path("data/cache/embeddings.sqlite3")
CHECKPOINT = Path("data/cache/run_checkpoint.jsonl")


def session_processes(session: int) -> list[str]:
    """Processes of `session` ("pid state command"), from /proc (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # After the command name in parentheses: state, ppid, pgrp, session, ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session:
            shown = command.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry.name} {fields[0]} {shown}")
    return found


def write_params(folder: Path, changes: Mapping[str, Any]) -> None:
    """The project's params.yaml in `folder`, with dotted keys ("gemini.base_url") changed."""
    settings = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        settings.setdefault(section, {})[key] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def load(folder: Path, relative: Path) -> Any:
    """A JSON file a run wrote in `folder`."""
    return json.loads((folder / relative).read_text(encoding="utf-8"))


def run_cli(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m asyncpipe` in a real subprocess, as a user would, without any API key.

    `preexec` runs in the child before asyncpipe starts (resource limits, privileges).
    """
    environment = {key: value for key, value in os.environ.items() if key != "GEMINI_API_KEY"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "asyncpipe", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )


# The virtual clock ---------------------------------------------------------------------------

#: Virtual seconds each pass of the event loop takes.
TICK = 1e-6


class _VirtualSelector(selectors.BaseSelector):
    """The real selector for file events; an idle wait with a timeout moves the clock instead."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Like a real clock, this one never stands still: each pass of the loop costs a tick.
        # Otherwise aiolimiter's float rounding can set a wake-up at "now" again and again.
        self._loop.advance(TICK)
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._loop.threads_working:
            # Nothing scheduled, or a thread (the embedding store's, an executor's) is working
            # for the loop: time must not jump past it, so wait for real until it answers.
            ready = self._real.select(10.0)
            if not ready and not self._loop.threads_working:
                raise RuntimeError("virtual clock loop: every task waits and no timer is set")
            return ready
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is virtual: sleeping advances it, nothing really waits.

    Timers fire in order, at their virtual time, as soon as nothing else is ready, so a test
    of minutes of rate limiting, backoff or grace runs in milliseconds and measures exact
    durations. Work handed to a thread with `run_in_executor` is waited for in real time,
    with the clock held, so a timer never fires "early" while a thread is still busy.
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self.threads_working = 0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., _Result], *args: Any
    ) -> asyncio.Future[_Result]:
        future = super().run_in_executor(executor, func, *args)
        self.threads_working += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self.threads_working -= 1


def run_virtual(main: Callable[[], Awaitable[_Result]]) -> _Result:
    """Run `main()` to completion on a fresh `VirtualClockLoop`; its clock starts at 0."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def on_virtual_clock(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh `VirtualClockLoop`: `@on_virtual_clock` above `async def`.

    The test takes fixtures as usual (the wrapper keeps its signature); its sleeps and
    timeouts take no real time, and its `loop.time()` readings are exact.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        run_virtual(lambda: test(*args, **kwargs))

    return run
