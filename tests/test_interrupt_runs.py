"""Real signals to real runs: `python -m asyncpipe run --provider gemini` against the local server.

Every run is a subprocess in a session of its own (`start_new_session=True`, so its
session id is its pid and any process it leaves behind keeps that id), talking HTTP
to a `GeminiTestServer` started in this process with some latency per request, and
a small `max_concurrent_requests` and `batch_size`, so that the embedding phase lasts
several seconds and a signal sent once the checkpoint records some themes lands in
the middle of it. Nothing is mocked: the signals are `os.kill`, the process tree is
read from /proc, the store is opened with sqlite3.

Each interrupted run gets a server of its own, so what a server saw is what that run
(and its resumption) sent. One uninterrupted run of the same params is the reference
the resumed runs must match byte for byte (the server's vectors depend on the text
only). Figures (signal to exit, requests saved by a resume) are printed: `-rP` shows them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from tests.gemini_server import GeminiTestServer, ServerConfig
from tests.support import (
    ALL_TABLE,
    CANDIDATES,
    CHECKPOINT,
    FINAL,
    METADATA,
    PUZZLE_SETS,
    PUZZLE_TABLE,
    SELECTED,
    STORE,
    load,
    session_processes,
    write_params,
)

pytestmark = pytest.mark.slow

KEY = "AIzaSy-asyncpipe-INTERRUPT-5e2b9d4f1a"
COUNT = 20
THEMES = 4 * COUNT
#: Seconds each request takes at the server: with 2 in flight and 50 texts a request,
#: the ~1,350 distinct texts of 20 puzzles take about 5 s to embed.
LATENCY = 0.3
#: After the first signal, for the requests in flight and then the scoring of the puzzles
#: their themes complete (which includes starting the scoring workers): on a loaded
#: 2-core machine that took up to 4 s. The run exits as soon as that work is done.
GRACE = 8.0
PARAMS: dict[str, Any] = {
    "gemini.embedding_dimension": 768,
    "concurrency.max_concurrent_requests": 2,
    "concurrency.batch_size": 50,
    "concurrency.shutdown_grace_seconds": GRACE,
    "puzzle_generation.candidate_words_per_theme": 20,
    "logging.progress_interval": 1.0,
    # Three windows (8, 8 and 4 puzzles): a signal lands in one of them, and a resumed
    # run makes the windows again from the checkpoint, each as the reference did.
    "puzzle_generation.puzzles_per_window": 8,
}
RUN_ARGS = ("run", "--provider", "gemini", "--count", str(COUNT))

#: Bounds on waits; none is expected to come near them.
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0
#: Signal to exit: the grace, writing the outputs, interpreter shutdown, a loaded machine.
EXIT_MARGIN = 15.0
#: A second signal ends the run "at once": killing and joining the workers, nothing more.
PROMPT_EXIT = 5.0
#: Themes the checkpoint must record before a signal is sent: well into the embedding
#: (enough finished themes for a few puzzles), well before its end.
THEMES_BEFORE_SIGNAL = 24


# --- a run ------------------------------------------------------------------------------


@dataclass
class CliRun:
    """One `python -m asyncpipe` process in its own session; stderr goes to a file."""

    folder: Path
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    signals: list[tuple[str, float]] = field(default_factory=list)
    ended: float | None = None

    @classmethod
    def start(cls, folder: Path, *args: str) -> CliRun:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")
        }
        environment["GEMINI_API_KEY"] = KEY
        logs = folder.parent / "logs"
        logs.mkdir(exist_ok=True)
        number = len(list(logs.glob(f"{folder.name}-*.stderr")))
        log = logs / f"{folder.name}-{number}.stderr"
        with open(log, "wb") as stderr, open(log.with_suffix(".stdout"), "wb") as stdout:
            process = subprocess.Popen(
                [sys.executable, "-m", "asyncpipe", *args],
                cwd=folder,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its session id is its pid: any survivor keeps it
            )
        return cls(folder, process, log, time.monotonic())

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        code = self.process.poll()
        text = "\n".join(self.stderr().splitlines()[-lines:])
        return f"[pid {self.pid}, exit code {code}, stderr tail:]\n{text}"

    def send(self, number: int) -> None:
        os.kill(self.pid, number)
        self.signals.append((signal.Signals(number).name, time.monotonic()))

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """The exit code; a run still going after `timeout` is killed and the test fails."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the run did not exit within {timeout:.0f} s\n{self.tail()}")
        self.ended = time.monotonic()
        return code

    def seconds_since_signal(self, which: int = 0) -> float:
        assert self.ended is not None and self.signals
        return self.ended - self.signals[which][1]

    def kill(self) -> None:
        """End the run's process group if it or a process it left is still there (cleanup
        after a failure: nothing of a run outlives the module)."""
        if self.process.poll() is None or session_processes(self.pid):
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], what: str, run: CliRun, timeout: float) -> float:
    """Poll until `condition` holds; fail (with the run's stderr) if the run ends first."""
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        if run.process.poll() is not None:
            pytest.fail(f"the run ended before {what}\n{run.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s\n{run.tail()}")
        time.sleep(0.02)
    return time.monotonic() - started


def write_server_params(folder: Path, server: GeminiTestServer) -> None:
    write_params(folder, {**PARAMS, "gemini.base_url": server.base_url})


def new_folder(root: Path, name: str, server: GeminiTestServer) -> Path:
    folder = root / name
    folder.mkdir()
    write_server_params(folder, server)
    return folder


def warm_folder(root: Path, name: str, server: GeminiTestServer, reference: Path) -> Path:
    """A folder whose store already holds every vector the run needs: it sends no request
    and goes straight on to scoring."""
    folder = new_folder(root, name, server)
    (folder / STORE).parent.mkdir(parents=True)
    for path in (reference / STORE).parent.glob(f"{STORE.name}*"):
        shutil.copy(path, (folder / STORE).parent / path.name)
    return folder


# --- what a run leaves ------------------------------------------------------------------


def session_left_behind(session: int, patience: float = 5.0) -> list[str]:
    """Live processes still in `session` after giving exiting ones (the resource tracker,
    workers whose parent is gone) `patience` seconds to go. Zombies are dead already:
    reaping the orphans is init's business, and in a container it can take a second."""
    deadline = time.monotonic() + patience
    while True:
        members = [member for member in session_processes(session) if member.split()[1] != "Z"]
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


def scoring_workers(session: int) -> list[str]:
    """The run's multiprocessing `spawn` children (the resource tracker is not one)."""
    return [member for member in session_processes(session) if "spawn_main" in member]


def checkpoint_records(folder: Path, allow_torn: bool = False) -> list[dict[str, Any]]:
    """Every record of the checkpoint; a last line a kill cut short is ignored if allowed."""
    lines = (folder / CHECKPOINT).read_bytes().split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as it should
    assert allow_torn or torn == b"", f"the checkpoint ends with a partial line: {torn[:200]!r}"
    records = []
    for number, line in enumerate(lines, start=1):
        record = json.loads(line)  # every complete line is JSON
        assert isinstance(record, dict), f"checkpoint line {number} is not an object"
        records.append(record)
    assert records and records[0].get("checkpoint") == 1, records[:1]
    return records


def themes_checkpointed(folder: Path) -> int:
    """Theme lines in the checkpoint so far (0 before it exists); safe to poll."""
    try:
        data = (folder / CHECKPOINT).read_bytes()
    except FileNotFoundError:
        return 0
    return sum(1 for line in data.split(b"\n") if line.startswith(b'{"theme"'))


def finished_themes(records: list[dict[str, Any]]) -> list[str]:
    return [record["theme"] for record in records if "theme" in record and "failed" not in record]


def normalised(text: str) -> str:
    """How the engine keys (and sends) a text: NFC, whitespace collapsed (copied from
    asyncpipe.embeddings.cache.normalise_text, so the test does not trust it)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def texts_of(folder: Path, themes: list[str]) -> set[str]:
    """What embedding `themes` sends: each theme and its candidate words."""
    candidates = load(folder, CANDIDATES)["candidates"]
    texts: set[str] = set()
    for theme in themes:
        for text in [theme, *candidates[theme]["words"]]:
            texts.update({text, normalised(text)})
    return texts


def assert_complete_puzzles(folder: Path) -> int:
    """final_puzzles.json, if written, holds only whole, scored puzzles; their number.
    The app's puzzle_sets.json, if written, keeps the app's rules."""
    if (folder / PUZZLE_SETS).exists():
        assert validate_puzzle_sets(load(folder, PUZZLE_SETS)) == []
    if not (folder / FINAL).exists():
        return 0
    puzzles = load(folder, FINAL)
    assert isinstance(puzzles, dict)
    assert list(puzzles) == [f"puzzle_{number}" for number in range(1, len(puzzles) + 1)]
    for name, puzzle in puzzles.items():
        assert len(puzzle["words"]) == 16 == len(set(puzzle["words"])), name
        assert len(puzzle["themes"]) == 4 == len(set(puzzle["themes"])), name
        assert len(puzzle["theme_similarity_scores"]) == 16, name
        assert "quality" in puzzle, f"{name} was not scored"
    return len(puzzles)


def assert_store_intact(folder: Path) -> int:
    """The embedding store passes SQLite's integrity check and holds vectors; their count."""
    path = folder / STORE
    assert path.exists(), f"no embedding store at {path}"
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (rows,) = connection.execute("SELECT COUNT(*) FROM vectors").fetchone()
    assert rows > 0
    return int(rows)


def assert_nothing_left(run: CliRun) -> None:
    left = session_left_behind(run.pid)
    assert left == [], f"processes of the run still alive: {left}\n{run.tail()}"


def wait_until_quiet(server: GeminiTestServer, timeout: float = 5.0) -> None:
    """Until the server handles nothing and no request has arrived for a moment: the
    answers to a killed run's last requests, and any request still in its socket."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        count = server.request_count
        if server.in_flight == 0 and count == seen:
            return
        seen = count
        time.sleep(0.2)


def figure(text: str) -> None:
    print(f"[figure] {text}")


# --- shared runs ------------------------------------------------------------------------


@dataclass
class Finished:
    folder: Path
    server: GeminiTestServer
    final: bytes
    requests: int
    texts: int
    seconds: float


@dataclass
class Interrupted:
    folder: Path
    server: GeminiTestServer
    run: CliRun
    code: int
    themes_at_signal: int
    #: The run's processes when the signal was sent.
    session_at_signal: list[str]


@dataclass
class Killed:
    folder: Path
    #: A copy of the folder taken right after the kill, for tests that need it untouched.
    snapshot: Path
    server: GeminiTestServer
    run: CliRun
    records: list[dict[str, Any]]
    #: What the server had been sent when the run was killed.
    texts_before: Counter[str]
    requests_before: int


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interrupt-runs")


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[], GeminiTestServer]]:
    """A new server per call, all closed at the end of the module (resumptions reuse them)."""
    with ExitStack() as stack:

        def start() -> GeminiTestServer:
            config = ServerConfig(valid_keys=frozenset({KEY}), latency=LATENCY)
            return stack.enter_context(GeminiTestServer(config))

        yield start


@pytest.fixture(scope="module")
def runs() -> Iterator[list[CliRun]]:
    """Every run started; any still going when the module ends is killed."""
    started: list[CliRun] = []
    yield started
    for run in started:
        run.kill()


class ReferenceRun:
    """The uninterrupted run the resumed ones must match: started once, as early as the
    module knows it will be needed, so that it runs while the first tests do theirs."""

    def __init__(
        self, root: Path, servers: Callable[[], GeminiTestServer], runs: list[CliRun]
    ) -> None:
        self._root = root
        self._servers = servers
        self._runs = runs
        self._started: tuple[GeminiTestServer, CliRun] | None = None
        self._finished: Finished | None = None

    def start(self) -> None:
        if self._started is None:
            server = self._servers()
            run = CliRun.start(new_folder(self._root, "reference", server), *RUN_ARGS)
            self._runs.append(run)
            self._started = server, run

    def result(self) -> Finished:
        if self._finished is None:
            self.start()
            assert self._started is not None
            server, run = self._started
            folder = run.folder
            code = run.wait(RUN_TIMEOUT)
            assert code == 0, run.tail()
            assert not (folder / CHECKPOINT).exists(), "a complete run leaves no checkpoint"
            assert assert_complete_puzzles(folder) == COUNT
            assert load(folder, METADATA)["partial"] is False
            seconds = (run.ended or 0.0) - run.started
            self._finished = Finished(
                folder,
                server,
                (folder / FINAL).read_bytes(),
                server.request_count,
                len(server.texts_requested()),
                seconds,
            )
            figure(
                f"reference run: {server.request_count} requests, "
                f"{len(server.texts_requested())} texts, {seconds:.1f} s wall"
            )
        return self._finished


@pytest.fixture(scope="module")
def reference_run(
    root: Path, servers: Callable[[], GeminiTestServer], runs: list[CliRun]
) -> ReferenceRun:
    return ReferenceRun(root, servers, runs)


@pytest.fixture(scope="module", autouse=True)
def start_reference_early(request: pytest.FixtureRequest, reference_run: ReferenceRun) -> None:
    """Start the reference run at once if a selected test of this module needs it."""
    if any(
        "reference" in getattr(item, "fixturenames", ())
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    ):
        reference_run.start()


@pytest.fixture(scope="module")
def reference(reference_run: ReferenceRun) -> Finished:
    return reference_run.result()


@pytest.fixture(scope="module")
def interrupted(
    root: Path, servers: Callable[[], GeminiTestServer], runs: list[CliRun]
) -> Callable[[int], Interrupted]:
    """A run stopped by one signal mid-embedding, one per signal, made on first use."""
    made: dict[int, Interrupted] = {}

    def get(number: int) -> Interrupted:
        if number not in made:
            server = servers()
            name = signal.Signals(number).name
            folder = new_folder(root, f"one-{name}", server)
            run = start_mid_embedding(folder, runs)
            at_signal = themes_checkpointed(folder)
            members = session_processes(run.pid)
            run.send(number)
            code = run.wait()
            made[number] = Interrupted(folder, server, run, code, at_signal, members)
        return made[number]

    return get


def start_mid_embedding(folder: Path, runs: list[CliRun]) -> CliRun:
    """A run started in `folder`, returned once its checkpoint holds THEMES_BEFORE_SIGNAL."""
    run = CliRun.start(folder, *RUN_ARGS)
    runs.append(run)
    wait_for(
        lambda: themes_checkpointed(folder) >= THEMES_BEFORE_SIGNAL,
        f"{THEMES_BEFORE_SIGNAL} themes in the checkpoint",
        run,
        START_TIMEOUT,
    )
    return run


@pytest.fixture(scope="module")
def killed(root: Path, servers: Callable[[], GeminiTestServer], runs: list[CliRun]) -> Killed:
    """A run ended by SIGKILL mid-embedding, and what it had done by then."""
    server = servers()
    folder = new_folder(root, "killed", server)
    run = start_mid_embedding(folder, runs)
    run.send(signal.SIGKILL)
    code = run.wait()
    assert code == -signal.SIGKILL, run.tail()
    # Mid-embedding the scoring workers are already up (the pool starts them as it opens):
    # they die with the parent (PR_SET_PDEATHSIG), and multiprocessing's resource tracker
    # goes when the parent's end of its pipe closes.
    assert_nothing_left(run)
    wait_until_quiet(server)
    snapshot = root / "killed-snapshot"
    shutil.copytree(folder, snapshot)
    return Killed(
        folder,
        snapshot,
        server,
        run,
        checkpoint_records(folder, allow_torn=True),
        server.texts_requested(),
        server.request_count,
    )


# --- one signal: wind down, write the completed puzzles, exit 128 + n ------------------


@pytest.mark.parametrize(
    ("number", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_mid_embedding_writes_a_partial_batch_and_exits_128_plus_n(
    interrupted: Callable[[int], Interrupted], number: int, code: int
) -> None:
    result = interrupted(number)
    run, folder = result.run, result.folder
    name = signal.Signals(number).name
    seconds = run.seconds_since_signal()
    figure(
        f"{name} after {result.themes_at_signal} of {THEMES} themes: exit {result.code} "
        f"{seconds:.2f} s after the signal (grace {GRACE:g} s)"
    )

    assert result.code == code, run.tail()
    assert seconds < GRACE + EXIT_MARGIN, run.tail()
    assert "Traceback" not in run.stderr(), run.tail()
    assert_nothing_left(run)

    # The signal came mid-embedding: the run wound down instead of finishing.
    records = checkpoint_records(folder)  # it exists, and every line parses
    themes = finished_themes(records)
    assert result.themes_at_signal <= len(themes) < THEMES, run.tail()

    made = assert_complete_puzzles(folder)
    metadata = load(folder, METADATA)
    assert metadata["partial"] is True
    assert metadata["interrupted_by"] == name
    assert metadata["resumed"] is False
    assert 0 < made == metadata["counts"]["puzzles_generated"] < COUNT, run.tail()
    # Every puzzle written is made of themes the checkpoint records as finished.
    used = {theme for puzzle in load(folder, FINAL).values() for theme in puzzle["themes"]}
    assert used <= set(themes)
    scored = sum(1 for record in records if "puzzle" in record)
    assert scored >= made
    # The table of every embedded text is left to the resumed run; the puzzles' is written.
    assert not (folder / ALL_TABLE).exists()
    assert (folder / PUZZLE_TABLE).exists()
    rows = assert_store_intact(folder)
    figure(
        f"{name}: {len(themes)} themes finished, {made} puzzles written, {scored} scores "
        f"recorded, {rows} vectors stored, {result.server.request_count} requests"
    )


def test_the_scoring_workers_are_up_while_the_themes_are_embedded(
    interrupted: Callable[[int], Interrupted],
) -> None:
    # The run opens its ScoringPool before the embedding, which starts its workers, and
    # each builds its split table as it starts: so the scoring, and a run winding down
    # within its grace, need not wait for them.
    result = interrupted(signal.SIGTERM)

    members = result.session_at_signal
    workers = [member for member in members if "spawn_main" in member]
    assert workers, (
        f"no scoring worker after {result.themes_at_signal} themes were embedded; "
        f"the run's processes: {members}"
    )


# --- a second signal: out at once, workers killed ---------------------------------------


@pytest.mark.parametrize("phase", ["embedding", "scoring"])
def test_a_second_sigint_exits_at_once_with_130_and_leaves_no_process(
    root: Path,
    servers: Callable[[], GeminiTestServer],
    runs: list[CliRun],
    reference: Finished,
    phase: str,
) -> None:
    server = servers()
    if phase == "scoring":
        folder = warm_folder(root, f"twice-{phase}", server, reference.folder)
    else:
        folder = new_folder(root, f"twice-{phase}", server)
    run = CliRun.start(folder, *RUN_ARGS)
    runs.append(run)
    if phase == "embedding":
        wait_for(
            lambda: themes_checkpointed(folder) >= THEMES_BEFORE_SIGNAL,
            f"{THEMES_BEFORE_SIGNAL} themes in the checkpoint",
            run,
            START_TIMEOUT,
        )
    else:
        # The pool's spawn workers (its processes, not the resource tracker) are up.
        wait_for(lambda: len(scoring_workers(run.pid)) > 0, "scoring workers", run, RUN_TIMEOUT)
    workers = scoring_workers(run.pid)
    in_flight = server.in_flight
    run.send(signal.SIGINT)
    time.sleep(0.2)  # the first one is being acted on: requests or scoring still in flight
    assert run.process.poll() is None, f"the first SIGINT ended the run\n{run.tail()}"
    run.send(signal.SIGINT)
    code = run.wait()
    seconds = run.seconds_since_signal(1)
    figure(
        f"second SIGINT while {phase} ({len(workers)} scoring workers, {in_flight} requests "
        f"in flight): exit {code} {seconds:.2f} s after it"
    )

    assert code == 130, run.tail()
    assert seconds < PROMPT_EXIT, run.tail()
    assert "exiting now" in run.stderr(), run.tail()
    assert "Traceback" not in run.stderr(), run.tail()
    assert_nothing_left(run)
    if phase == "scoring":
        assert workers, "no scoring worker was alive at the signals"
    assert_store_intact(folder)
    # Every whole line is a record; only a line the exit cut short may be left (and the
    # resumed run ignores it).
    checkpoint_records(folder, allow_torn=True)


def test_sigkill_while_scoring_leaves_no_worker_behind(
    root: Path,
    servers: Callable[[], GeminiTestServer],
    runs: list[CliRun],
    reference: Finished,
) -> None:
    # A kill runs no cleanup in the parent: the workers must go by themselves.
    folder = warm_folder(root, "killed-while-scoring", servers(), reference.folder)
    run = CliRun.start(folder, *RUN_ARGS)
    runs.append(run)
    wait_for(lambda: len(scoring_workers(run.pid)) > 0, "scoring workers", run, RUN_TIMEOUT)
    # Both workers up and scoring (the pool starts them one by one, as work comes).
    wait_for(lambda: len(scoring_workers(run.pid)) >= 2, "a second scoring worker", run, 10.0)
    workers = scoring_workers(run.pid)
    run.send(signal.SIGKILL)
    code = run.wait()
    started = time.monotonic()
    left = session_left_behind(run.pid)
    figure(
        f"SIGKILL while scoring ({len(workers)} workers): the session was empty "
        f"{time.monotonic() - started:.2f} s after the parent's exit"
    )

    assert code == -signal.SIGKILL, run.tail()
    assert left == [], f"processes of the killed run still alive: {left}\n{run.tail()}"
    assert_store_intact(folder)
    checkpoint_records(folder, allow_torn=True)


# --- resuming ---------------------------------------------------------------------------


def test_a_run_killed_with_sigkill_resumes_to_the_same_puzzles_without_redoing_themes(
    killed: Killed, reference: Finished, runs: list[CliRun]
) -> None:
    finished = finished_themes(killed.records)
    assert THEMES_BEFORE_SIGNAL <= len(finished) < THEMES, "the kill came mid-embedding"
    assert_store_intact(killed.folder)  # a kill at any moment leaves the store intact
    avoided = texts_of(killed.folder, finished)

    run = CliRun.start(killed.folder, *RUN_ARGS, "--resume")
    runs.append(run)
    code = run.wait(RUN_TIMEOUT)

    assert code == 0, run.tail()
    assert (killed.folder / FINAL).read_bytes() == reference.final
    metadata = load(killed.folder, METADATA)
    assert metadata["resumed"] is True
    assert metadata["partial"] is False
    assert metadata["interrupted_by"] is None
    assert metadata["run_statistics"]["themes_resumed"] == len(finished)
    assert not (killed.folder / CHECKPOINT).exists(), "the complete run deletes the checkpoint"
    assert_nothing_left(run)

    sent = killed.server.texts_requested() - killed.texts_before
    requests = killed.server.request_count - killed.requests_before
    assert sent, "the resumed run embedded nothing: the kill came too late to prove anything"
    again = sorted(set(sent) & avoided)
    assert again == [], f"texts of themes finished before the kill were requested again: {again}"
    assert metadata["run_statistics"]["requests"] == requests
    figure(
        f"SIGKILL after {len(finished)} of {THEMES} themes (killed run: "
        f"{killed.requests_before} requests); resume: {requests} requests, {len(sent)} texts, "
        f"{(run.ended or 0.0) - run.started:.1f} s (reference: {reference.requests} requests, "
        f"{reference.texts} texts); {len(avoided)} texts of finished themes not requested again"
    )


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (("--count", str(COUNT + 1)), "puzzle_generation.total_puzzle_count"),
        (("--count", str(COUNT), "--seed", "7"), "puzzle_generation.random_seed"),
    ],
    ids=["count", "seed"],
)
def test_resume_with_other_params_is_refused_and_leaves_the_checkpoint_alone(
    killed: Killed, root: Path, runs: list[CliRun], flags: tuple[str, ...], key: str
) -> None:
    folder = root / f"other-{flags[-2].strip('-')}"
    shutil.copytree(killed.snapshot, folder)
    checkpoint = folder / CHECKPOINT
    before = checkpoint.read_bytes()
    selected = (folder / SELECTED).read_bytes()
    requests = killed.server.request_count

    run = CliRun.start(folder, "run", "--provider", "gemini", *flags, "--resume")
    runs.append(run)
    code = run.wait()

    stderr = run.stderr()
    assert code == 2, run.tail()
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, run.tail()
    assert str(folder.resolve() / CHECKPOINT) in errors[0]
    assert key in errors[0]
    others = {"puzzle_generation.total_puzzle_count", "puzzle_generation.random_seed"} - {key}
    assert not any(other in errors[0] for other in others)  # only what did change
    assert checkpoint.read_bytes() == before
    assert (folder / SELECTED).read_bytes() == selected  # refused before any stage ran
    assert killed.server.request_count == requests
    assert_nothing_left(run)
    figure(f"--resume with {' '.join(flags)}: {errors[0]}")


def test_a_run_stopped_by_sigterm_resumes_to_the_same_puzzles(
    interrupted: Callable[[int], Interrupted],
    reference: Finished,
    root: Path,
    runs: list[CliRun],
) -> None:
    stopped = interrupted(signal.SIGTERM)
    assert stopped.code == 143, stopped.run.tail()
    folder = root / "resume-after-SIGTERM"
    shutil.copytree(stopped.folder, folder)
    assert load(folder, METADATA)["partial"] is True  # the partial outputs are there
    finished = finished_themes(checkpoint_records(folder))
    avoided = texts_of(folder, finished)
    texts_before = stopped.server.texts_requested()
    requests_before = stopped.server.request_count

    run = CliRun.start(folder, *RUN_ARGS, "--resume")
    runs.append(run)
    code = run.wait(RUN_TIMEOUT)

    assert code == 0, run.tail()
    assert (folder / FINAL).read_bytes() == reference.final
    metadata = load(folder, METADATA)
    assert (metadata["resumed"], metadata["partial"]) == (True, False)
    assert metadata["interrupted_by"] is None
    assert not (folder / CHECKPOINT).exists()
    assert (folder / ALL_TABLE).exists()
    statistics = metadata["run_statistics"]
    assert statistics["themes_resumed"] == len(finished)
    sent = stopped.server.texts_requested() - texts_before
    assert sorted(set(sent) & avoided) == []
    figure(
        f"resume after SIGTERM: {stopped.server.request_count - requests_before} requests, "
        f"{len(sent)} texts; {statistics['themes_resumed']} themes and "
        f"{statistics['puzzle_scores_resumed']} puzzle scores taken from the checkpoint"
    )
