"""Batch mode in real runs: `python -m asyncpipe run --embedding-mode batch` against the local server.

Every scenario is a real subprocess of `python -m asyncpipe` (the real google-genai SDK,
real HTTP, real signals) with a `GeminiTestServer` of its own, so what a server saw is
what that scenario sent, and the server's job counter (`BatchConfig.end_states` counts
jobs from the server's first) is the scenario's. One online run of the same params is
the reference: a batch run must write the same `final_puzzles.json` and
`puzzle_sets.json` byte for byte, since the server's vectors depend on the text only.

- batch mode, inline, as a JSONL file (a tiny `gemini.batch_inline_mb`), and cut into
  several jobs (a small `gemini.batch_job_texts`): the reference's outputs, no online
  request;
- kill -9 while a job runs, then `run --resume`: the recorded job is waited on again by
  name, none is created anew;
- SIGTERM while waiting: exit 143 at once, the job left running; `asyncpipe jobs` lists
  it, `jobs --cancel` cancels it, and `run --resume` resubmits its texts;
- a FAILED or EXPIRED job: resubmitted once (or, `batch_fallback: online`, its texts
  requested online);
- errors of single lines: a permanent one (INVALID_ARGUMENT) fails its themes, replaced
  by spares; a passing one (INTERNAL) is resubmitted;
- auto mode on either side of `gemini.batch_min_texts`;
- a job past `gemini.batch_timeout_hours` is cancelled and resubmitted.

The scenarios start on a thread pool at the module's start, those that mostly wait
first; the tests then read what each left. Figures (signal to exit, run times) are
printed: `-rP` shows them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.gemini_batches import BatchConfig, BatchState, SubmittedJob
from tests.gemini_server import Arrival, GeminiTestServer, ServerConfig
from tests.support import (
    CHECKPOINT,
    FINAL,
    METADATA,
    PUZZLE_SETS,
    SELECTED,
    load,
    session_processes,
    write_params,
)

pytestmark = pytest.mark.slow

KEY = "AIzaSy-asyncpipe-BATCH-7d1c4a9e2f"
COUNT = 10
PARAMS: dict[str, Any] = {
    "gemini.embedding_dimension": 64,
    "gemini.batch_poll_seconds": 0.1,
    "puzzle_generation.candidate_words_per_theme": 20,
}
RUN_ARGS = ("run", "--provider", "gemini", "--count", str(COUNT))
BATCH = {"gemini.mode": "batch"}
#: Seconds each request takes at the server.
LATENCY = 0.02
#: A job's life at the server when a scenario does not need it to last.
QUICK_JOB = 0.3
#: A job that runs while the scenario kills its run: long enough for the kill to land
#: before it ends, short enough for the resume's wait.
KILLED_JOB = 6.0
#: A job nobody waits out: a signal or the run's timeout ends the wait long before.
ENDLESS_JOB = 30.0
#: `gemini.batch_timeout_hours` of the timeout scenario: 3.6 s.
TIMEOUT_HOURS = 0.001
#: SIGTERM to exit while waiting on jobs: a poll interval (at most a few tenths of a
#: second here), leaving the event loop and the interpreter's shutdown, on a loaded machine.
SIGTERM_EXIT = 8.0
#: The marker of the lines the server refuses for good: in "Californian cities" and
#: "Indian cities" (themes of the run) and "Japanese cities" (a spare).
REFUSED_MARKER = "cities"
#: Positions of the lines that fail for a passing reason in the job of every text.
PASSING_POSITIONS = frozenset({5, 17})
#: The JSON job file's limit, in MB: every job of the run is larger.
TINY_INLINE_MB = 0.01
JOB_TEXTS = 300
STATE = re.compile(r"JOB_STATE_[A-Z]+")

RUN_TIMEOUT = 120.0
START_TIMEOUT = 60.0


# --- a run ------------------------------------------------------------------------------


@dataclass
class Cli:
    """A finished `python -m asyncpipe` process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " WARNING " in line]

    def tail(self, lines: int = 40) -> str:
        shown = "\n".join(self.stderr.splitlines()[-lines:])
        return f"[{' '.join(self.args)}: exit code {self.returncode}, stderr tail:]\n{shown}"


class Running:
    """One `python -m asyncpipe` process in a session of its own; its output goes to files."""

    def __init__(self, folder: Path, *args: str) -> None:
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "SOURCE_DATE_EPOCH")
        }
        environment["GEMINI_API_KEY"] = KEY
        logs = folder.parent / "logs"
        logs.mkdir(exist_ok=True)
        number = len(list(logs.glob(f"{folder.name}-*.stderr")))
        self._log = logs / f"{folder.name}-{number}"
        self.args = args
        with (
            open(self._log.with_suffix(".stderr"), "wb") as stderr,
            open(self._log.with_suffix(".stdout"), "wb") as stdout,
        ):
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asyncpipe", *args],
                cwd=folder,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.ended: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self._log.with_suffix(".stderr").read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        shown = "\n".join(self.stderr().splitlines()[-lines:])
        return f"[{' '.join(self.args)}: pid {self.pid}, stderr tail:]\n{shown}"

    def finish(self, timeout: float = RUN_TIMEOUT) -> Cli:
        """Wait for the exit; a process still going after `timeout` is killed."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {timeout:.0f} s\n{self.tail()}") from None
        self.ended = time.monotonic()
        stdout = self._log.with_suffix(".stdout").read_text(encoding="utf-8", errors="replace")
        return Cli(self.args, code, stdout, self.stderr(), self.ended - self.started)

    def kill(self) -> None:
        """Whatever is left of its session, gone (cleanup after a failure)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def cli(folder: Path, *args: str, timeout: float = RUN_TIMEOUT) -> Cli:
    return Running(folder, *args).finish(timeout)


def wait_for(condition: Callable[[], bool], what: str, running: Running) -> None:
    """Poll until `condition` holds; fail (with the run's stderr) if the run ends first."""
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if running.process.poll() is not None:
            raise AssertionError(f"the run ended before {what}\n{running.tail()}")
        if time.monotonic() > deadline:
            running.kill()
            raise AssertionError(f"no {what} within {START_TIMEOUT:.0f} s\n{running.tail()}")
        time.sleep(0.02)


def checkpoint_records(folder: Path) -> list[dict[str, Any]]:
    """The checkpoint's whole lines, parsed (a line being written is left out)."""
    path = folder / CHECKPOINT
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        with suppress(ValueError):
            records.append(json.loads(line))
    return records


def job_records(folder: Path) -> list[dict[str, Any]]:
    return [record for record in checkpoint_records(folder) if "texts" in record]


# --- what a scenario leaves ---------------------------------------------------------------


@dataclass
class Outcome:
    """A scenario's runs and what they left, read before anything else touched them."""

    folder: Path
    runs: list[Cli]
    arrivals: list[Arrival]
    jobs: list[SubmittedJob]
    metadata: dict[str, Any]
    final: bytes
    puzzle_sets: bytes
    checkpoint_left: bool
    #: Figures and observations particular to the scenario.
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def run(self) -> Cli:
        """The last run."""
        return self.runs[-1]

    def methods(self) -> Counter[str | None]:
        return Counter(arrival.api_method for arrival in self.arrivals)

    def online_texts(self) -> set[str]:
        return {
            text
            for arrival in self.arrivals
            if arrival.api_method == "batchEmbedContents"
            for text in arrival.texts
        }

    def batch_figures(self) -> dict[str, Any]:
        figures = self.metadata.get("batch_jobs")
        assert isinstance(figures, dict), f"no batch_jobs in the metadata\n{self.run.tail()}"
        return figures

    def requests(self) -> int:
        return int(self.metadata["run_statistics"]["requests"])


def server_config(**batch: Any) -> ServerConfig:
    return ServerConfig(valid_keys=frozenset({KEY}), latency=LATENCY, batch=BatchConfig(**batch))


class Scenarios:
    """Every scenario started at once on threads; `scenarios.get(name)` waits for one."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[GeminiTestServer] = []
        self._running: list[Running] = []
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="batch-run")
        plain = {"delay": QUICK_JOB}
        scenarios: dict[str, Callable[[], Outcome]] = {
            # Those that mostly wait first.
            "timeout": self._timeout,
            "sigterm": self._sigterm,
            "kill": self._kill,
            "kill-flag": lambda: self._kill("kill-flag", {}, "--embedding-mode", "batch"),
            "afresh": self._afresh,
            "reference": lambda: self._one("reference", {}, plain),
            "batch": lambda: self._one("batch", {}, plain, "--embedding-mode", "batch"),
            "file": lambda: self._one(
                "file", {**BATCH, "gemini.batch_inline_mb": TINY_INLINE_MB}, plain
            ),
            "several": lambda: self._one(
                "several", {**BATCH, "gemini.batch_job_texts": JOB_TEXTS}, plain
            ),
            "failed": lambda: self._one(
                "failed", BATCH, {**plain, "end_states": (BatchState.FAILED,)}
            ),
            "failed-online": lambda: self._one(
                "failed-online",
                {**BATCH, "gemini.batch_fallback": "online"},
                {**plain, "end_states": (BatchState.FAILED,)},
            ),
            "expired": lambda: self._one(
                "expired", BATCH, {**plain, "end_states": (BatchState.EXPIRED,)}
            ),
            "refused": lambda: self._one(
                "refused",
                BATCH,
                {**plain, "error_marker": REFUSED_MARKER, "error_status": "INVALID_ARGUMENT"},
            ),
            # As a file job, so the lines' errors are read from a results file; the
            # resubmission of the two texts goes inline.
            "passing": lambda: self._one(
                "passing",
                {**BATCH, "gemini.batch_inline_mb": TINY_INLINE_MB},
                {**plain, "error_positions": PASSING_POSITIONS, "error_status": "INTERNAL"},
            ),
            "auto-online": lambda: self._one(
                "auto-online", {"gemini.mode": "auto", "gemini.batch_min_texts": 100_000}, plain
            ),
            "auto-batch": lambda: self._one(
                "auto-batch", {"gemini.mode": "auto", "gemini.batch_min_texts": 100}, plain
            ),
        }
        self._futures: dict[str, Future[Outcome]] = {
            name: self._pool.submit(scenario) for name, scenario in scenarios.items()
        }

    def get(self, name: str) -> Outcome:
        return self._futures[name].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for running in self._running:
            if running.process.poll() is None or session_processes(running.pid):
                running.kill()
        for server in self._servers:
            server.close()

    # --- the parts ---

    def _server(self, config: ServerConfig) -> GeminiTestServer:
        server = GeminiTestServer(config).start()
        self._servers.append(server)
        return server

    def _folder(self, name: str, server: GeminiTestServer, changes: dict[str, Any]) -> Path:
        folder = self._root / name
        folder.mkdir()
        write_params(folder, {**PARAMS, **changes, "gemini.base_url": server.base_url})
        return folder

    def _start(self, folder: Path, *args: str) -> Running:
        running = Running(folder, *args)
        self._running.append(running)
        return running

    def _outcome(
        self, folder: Path, server: GeminiTestServer, runs: list[Cli], **notes: Any
    ) -> Outcome:
        def read(relative: Path) -> bytes:
            path = folder / relative
            return path.read_bytes() if path.exists() else b""

        metadata = load(folder, METADATA) if (folder / METADATA).exists() else {}
        return Outcome(
            folder,
            runs,
            server.arrivals(),
            server.submitted_jobs(),
            metadata,
            read(FINAL),
            read(PUZZLE_SETS),
            (folder / CHECKPOINT).exists(),
            notes,
        )

    # --- the scenarios ---

    def _one(
        self, name: str, changes: dict[str, Any], batch: dict[str, Any], *args: str
    ) -> Outcome:
        server = self._server(server_config(**batch))
        folder = self._folder(name, server, changes)
        return self._outcome(folder, server, [cli(folder, *RUN_ARGS, *args)])

    def _waiting_on_a_job(
        self, name: str, job_seconds: float, changes: dict[str, Any], *args: str
    ) -> tuple[GeminiTestServer, Path, Running]:
        """A run started against a server of its own whose jobs last `job_seconds`,
        once its checkpoint records its job."""
        server = self._server(server_config(delay=job_seconds))
        folder = self._folder(name, server, changes)
        running = self._start(folder, *RUN_ARGS, *args)
        wait_for(lambda: bool(job_records(folder)), "batch job in the checkpoint", running)
        return server, folder, running

    def _kill(self, name: str = "kill", changes: dict[str, Any] = BATCH, *args: str) -> Outcome:
        """Killed while its job runs, then `run --resume` (without `args`: a run started
        with --embedding-mode batch is resumed without it)."""
        server, folder, running = self._waiting_on_a_job(name, KILLED_JOB, changes, *args)
        killed_at = time.monotonic()
        os.kill(running.pid, signal.SIGKILL)
        killed = running.finish()
        # What the kill left: the checkpoint's records, the server's jobs, any survivor.
        records = checkpoint_records(folder)
        jobs_at_kill = server.submitted_jobs()
        time.sleep(0.2)
        survivors = session_processes(running.pid)
        resumed = cli(folder, *RUN_ARGS, "--resume")
        return self._outcome(
            folder,
            server,
            [killed, resumed],
            killed_at=killed_at,
            records=records,
            jobs_at_kill=jobs_at_kill,
            survivors=survivors,
        )

    def _sigterm(self) -> Outcome:
        server, folder, running = self._waiting_on_a_job("sigterm", ENDLESS_JOB, BATCH)
        # Into the wait: the first poll has come.
        wait_for(
            lambda: any(arrival.api_method == "batches.get" for arrival in server.arrivals()),
            "poll of the job",
            running,
        )
        signalled_at = time.monotonic()
        os.kill(running.pid, signal.SIGTERM)
        stopped = running.finish()
        jobs_after_signal = server.submitted_jobs()
        arrivals_after_signal = server.arrivals()
        records = checkpoint_records(folder)
        listed = cli(folder, "jobs")
        cancelling = cli(folder, "jobs", "--cancel")
        jobs_after_cancel = server.submitted_jobs()
        listed_after_cancel = cli(folder, "jobs")
        # The resubmission need not last: a job's config is the server's at its creation.
        server.reconfigure(replace(server.config, batch=BatchConfig(delay=QUICK_JOB)))
        resumed = cli(folder, *RUN_ARGS, "--resume")
        return self._outcome(
            folder,
            server,
            [stopped, listed, cancelling, listed_after_cancel, resumed],
            signal_to_exit=stopped.seconds - (signalled_at - running.started),
            signalled_at=signalled_at,
            jobs_after_signal=jobs_after_signal,
            arrivals_after_signal=arrivals_after_signal,
            jobs_after_cancel=jobs_after_cancel,
            records=records,
        )

    def _afresh(self) -> Outcome:
        """Stopped while its job runs, then started afresh (no --resume) over it."""
        server, folder, running = self._waiting_on_a_job("afresh", KILLED_JOB, BATCH)
        os.kill(running.pid, signal.SIGTERM)
        stopped = running.finish()
        jobs_at_stop = server.submitted_jobs()
        again = cli(folder, *RUN_ARGS)
        return self._outcome(folder, server, [stopped, again], jobs_at_stop=jobs_at_stop)

    def _timeout(self) -> Outcome:
        server = self._server(server_config(delay=ENDLESS_JOB))
        folder = self._folder(
            "timeout", server, {**BATCH, "gemini.batch_timeout_hours": TIMEOUT_HOURS}
        )
        running = self._start(folder, *RUN_ARGS)
        wait_for(lambda: bool(server.submitted_jobs()), "batch job at the server", running)
        # The resubmission, created once the first job is past its timeout, ends quickly.
        server.reconfigure(replace(server.config, batch=BatchConfig(delay=QUICK_JOB)))
        return self._outcome(folder, server, [running.finish()])


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    started = Scenarios(tmp_path_factory.mktemp("batch-runs"))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def reference(scenarios: Scenarios) -> Outcome:
    """The online run: no job, only online requests, all puzzles."""
    outcome = scenarios.get("reference")
    assert outcome.run.returncode == 0, outcome.run.tail()
    assert outcome.metadata["counts"]["puzzles_generated"] == COUNT
    assert outcome.methods()["asyncBatchEmbedContent"] == 0
    assert outcome.requests() == outcome.methods()["batchEmbedContents"] > 0
    assert "batch_jobs" not in outcome.metadata or not outcome.metadata["batch_jobs"]
    return outcome


def assert_like_the_reference(outcome: Outcome, reference: Outcome) -> None:
    """Exit 0, every puzzle, the reference's outputs byte for byte, the checkpoint gone."""
    run = outcome.run
    print(f"[figure] {outcome.folder.name}: {run.seconds:.1f} s, jobs {len(outcome.jobs)}")
    assert run.returncode == 0, run.tail()
    assert "Traceback" not in run.stderr, run.tail()
    assert outcome.metadata["partial"] is False
    assert outcome.metadata["counts"]["puzzles_generated"] == COUNT
    assert outcome.final == reference.final, run.tail()
    assert outcome.puzzle_sets == reference.puzzle_sets
    assert not outcome.checkpoint_left


def assert_all_batch(outcome: Outcome, reference: Outcome) -> None:
    """No online request: the run's puzzles came from the store its jobs filled, and the
    jobs held every text the online run asked for, each at the run's dimension."""
    methods = outcome.methods()
    assert methods["batchEmbedContents"] == 0
    assert methods["embedContent"] == 0
    assert outcome.requests() == 0
    assert len(outcome.jobs) >= 1
    submitted = {text for job in outcome.jobs for text in job.texts}
    assert reference.online_texts() <= submitted
    assert {dimension for job in outcome.jobs for dimension in job.dimensions} == {
        PARAMS["gemini.embedding_dimension"]
    }


# --- batch mode is the online run ---------------------------------------------------------


def test_batch_mode_writes_the_online_runs_outputs_with_no_online_request(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("batch")

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    # One inline job of every distinct text, each once.
    assert len(outcome.jobs) == 1
    job = outcome.jobs[0]
    assert job.source == "inline"
    assert len(set(job.texts)) == len(job.texts)
    assert job.end_state == BatchState.SUCCEEDED and job.cancelled is None
    assert outcome.methods()["files.create"] == 0
    figures = outcome.batch_figures()
    assert figures["jobs_created"] == 1
    assert figures["jobs_reattached"] == figures["jobs_failed"] == 0
    assert figures["texts_submitted"] == figures["texts_stored"] == len(job.texts)
    assert figures["texts_refused"] == figures["texts_online"] == figures["texts_failed"] == 0
    assert f"Created batch job {job.name}: {len(job.texts)} texts, inline" in outcome.run.stderr


def test_a_job_too_large_to_go_inline_goes_as_an_uploaded_file(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("file")

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert len(outcome.jobs) == 1
    assert outcome.jobs[0].source.startswith("files/")
    assert outcome.methods()["files.create"] == 1
    # The results came back as a file and were downloaded.
    assert outcome.methods()["files.download"] >= 1
    assert outcome.batch_figures()["texts_stored"] == len(outcome.jobs[0].texts)


def test_a_small_batch_job_texts_cuts_the_texts_into_several_jobs(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("several")

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    sizes = [len(job.texts) for job in outcome.jobs]
    assert len(sizes) >= 3
    assert all(size == JOB_TEXTS for size in sizes[:-1]) and 0 < sizes[-1] <= JOB_TEXTS
    every = [text for job in outcome.jobs for text in job.texts]
    assert len(every) == len(set(every)), "a text was in two jobs"
    assert outcome.batch_figures()["jobs_created"] == len(sizes)
    assert outcome.batch_figures()["texts_submitted"] == len(every)


# --- kill -9, then --resume ---------------------------------------------------------------


def test_a_run_killed_while_its_job_runs_resumes_by_waiting_on_the_same_job(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("kill")
    killed, resumed = outcome.runs

    assert killed.returncode == -signal.SIGKILL
    # The kill landed while the job ran; the checkpoint held it, by name and texts.
    assert len(outcome.notes["jobs_at_kill"]) == 1
    job = outcome.notes["jobs_at_kill"][0]
    assert outcome.notes["killed_at"] < job.created + KILLED_JOB
    records = [record for record in outcome.notes["records"] if "batch_job" in record]
    assert [record["batch_job"] for record in records] == [job.name]
    assert tuple(records[0]["texts"]) == job.texts
    assert records[0]["attempt"] == 1
    assert outcome.notes["survivors"] == [], "the killed run left processes behind"

    # The resume waited on that job: no second creation, no online request.
    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert [submitted.name for submitted in outcome.jobs] == [job.name]
    assert outcome.methods()["asyncBatchEmbedContent"] == 1
    figures = outcome.batch_figures()
    assert figures["jobs_reattached"] == 1
    assert figures["jobs_created"] == 0
    assert figures["texts_stored"] == len(job.texts)
    assert outcome.metadata["resumed"] is True  # though no theme had finished
    assert f"Reattaching to 1 batch jobs of the interrupted run: {job.name}" in resumed.stderr


def test_a_batch_run_resumed_without_the_flag_still_waits_on_its_job(
    scenarios: Scenarios, reference: Outcome
) -> None:
    # The job is paid for: a resume in online mode (gemini.mode's default) waits on it,
    # and sends online only what it does not cover (here nothing).
    outcome = scenarios.get("kill-flag")
    killed, resumed = outcome.runs
    assert killed.returncode == -signal.SIGKILL
    assert resumed.returncode == 0, resumed.tail()
    (job,) = outcome.notes["jobs_at_kill"]
    assert [submitted.name for submitted in outcome.jobs] == [job.name]
    assert job.cancelled is None
    assert outcome.requests() == 0 and outcome.online_texts() == set()
    assert outcome.batch_figures()["jobs_reattached"] == 1
    assert_like_the_reference(outcome, reference)


def test_a_run_started_afresh_over_an_open_job_adopts_it_instead_of_paying_again(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("afresh")
    stopped, again = outcome.runs
    assert stopped.returncode == 143
    (job,) = outcome.notes["jobs_at_stop"]
    assert again.returncode == 0, again.tail()
    assert [submitted.name for submitted in outcome.jobs] == [job.name]  # no second job
    assert f"Adopting batch job {job.name}" in again.stderr
    assert any(job.name in line for line in again.warnings())
    assert outcome.requests() == 0
    assert_like_the_reference(outcome, reference)


# --- SIGTERM while waiting, `asyncpipe jobs`, --resume ----------------------------------------


def test_sigterm_while_waiting_exits_143_at_once_and_leaves_the_job_running(
    scenarios: Scenarios,
) -> None:
    outcome = scenarios.get("sigterm")
    stopped = outcome.runs[0]

    print(
        f"[figure] SIGTERM while waiting on a job: exit after {outcome.notes['signal_to_exit']:.2f} s"
    )
    assert stopped.returncode == 143, stopped.tail()
    assert outcome.notes["signal_to_exit"] < SIGTERM_EXIT
    assert "Traceback" not in stopped.stderr, stopped.tail()
    # The job is running still, untouched.
    (job,) = outcome.notes["jobs_after_signal"]
    assert job.cancelled is None
    # The signal came while it ran, and the run did not wait for its end.
    assert job.created < outcome.notes["signalled_at"] < job.created + ENDLESS_JOB
    methods = Counter(arrival.api_method for arrival in outcome.notes["arrivals_after_signal"])
    assert methods["batches.cancel"] == 0
    assert methods["asyncBatchEmbedContent"] == 1
    hint = [
        line for line in stopped.warnings() if "`asyncpipe run --resume` waits for them" in line
    ]
    assert len(hint) == 1, stopped.tail()
    assert job.name in hint[0]
    assert "`asyncpipe jobs --cancel` cancels them" in hint[0]
    # The checkpoint keeps the job, not ended.
    records = [record for record in outcome.notes["records"] if record.get("batch_job")]
    assert [record["batch_job"] for record in records] == [job.name]
    assert "ended" not in records[0]


def test_asyncpipe_jobs_lists_and_cancels_the_jobs_and_resume_resubmits_them(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("sigterm")
    _, listed, cancelling, listed_after_cancel, resumed = outcome.runs
    (job,) = outcome.notes["jobs_after_signal"]

    # `jobs`: one line, the job's name, its state while it runs, its texts.
    assert listed.returncode == 0, listed.tail()
    lines = listed.stdout.splitlines()
    assert len(lines) == 1, listed.stdout
    assert lines[0].startswith(f"{job.name}  ")
    assert STATE.search(lines[0]) is not None
    assert STATE.search(lines[0]).group() in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    assert f"{len(job.texts):,} texts" in lines[0]
    assert "cancel requested" not in lines[0]

    # `jobs --cancel`: the job cancelled on the server, and said so.
    assert cancelling.returncode == 0, cancelling.tail()
    (line,) = cancelling.stdout.splitlines()
    assert line.startswith(f"{job.name}  ") and line.count("-> cancel requested") == 1
    (cancelled,) = outcome.notes["jobs_after_cancel"]
    assert cancelled.cancelled is not None
    assert listed_after_cancel.returncode == 0, listed_after_cancel.tail()
    assert "JOB_STATE_CANCELLED" in listed_after_cancel.stdout
    assert "cancel requested" not in listed_after_cancel.stdout

    # The resume sees it CANCELLED and resubmits its texts once, in one new job.
    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert len(outcome.jobs) == 2
    first, again = outcome.jobs
    assert first.name == job.name
    assert again.texts == first.texts
    assert again.cancelled is None and again.end_state == BatchState.SUCCEEDED
    figures = outcome.batch_figures()
    assert (figures["jobs_reattached"], figures["jobs_created"], figures["jobs_failed"]) == (
        1,
        1,
        1,
    )
    assert f"Batch job {job.name} ended JOB_STATE_CANCELLED" in resumed.stderr


# --- jobs that fail -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"), [("failed", "JOB_STATE_FAILED"), ("expired", "JOB_STATE_EXPIRED")]
)
def test_a_failed_or_expired_job_is_resubmitted_once_and_the_run_completes(
    scenarios: Scenarios, reference: Outcome, name: str, state: str
) -> None:
    outcome = scenarios.get(name)

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert len(outcome.jobs) == 2
    first, again = outcome.jobs
    assert first.end_state.name == state.removeprefix("JOB_STATE_")
    assert again.end_state == BatchState.SUCCEEDED
    assert again.texts == first.texts
    assert again.display_name != first.display_name  # attempt 2 is named apart
    told = [
        line for line in outcome.run.warnings() if f"Batch job {first.name} ended {state}" in line
    ]
    assert len(told) == 1, outcome.run.tail()
    assert "are resubmitted" in told[0]
    figures = outcome.batch_figures()
    assert (figures["jobs_created"], figures["jobs_failed"]) == (2, 1)
    assert figures["texts_submitted"] == 2 * len(first.texts)
    assert figures["texts_stored"] == len(first.texts)


def test_a_failed_job_with_fallback_online_sends_its_texts_online(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("failed-online")

    assert_like_the_reference(outcome, reference)
    (job,) = outcome.jobs
    assert job.end_state == BatchState.FAILED
    told = [
        line
        for line in outcome.run.warnings()
        if f"Batch job {job.name} ended JOB_STATE_FAILED" in line
    ]
    assert len(told) == 1 and "go online" in told[0], outcome.run.tail()
    online = outcome.methods()["batchEmbedContents"]
    assert online > 0
    assert outcome.requests() == online
    assert outcome.online_texts() <= set(job.texts)
    figures = outcome.batch_figures()
    assert (figures["jobs_created"], figures["jobs_failed"]) == (1, 1)
    assert figures["texts_online"] == len(job.texts)
    assert figures["texts_stored"] == 0


# --- errors of single lines -----------------------------------------------------------------


def test_lines_refused_for_good_fail_their_themes_which_spares_replace(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("refused")
    run = outcome.run
    selected = load(reference.folder, SELECTED)
    hit = [theme for theme in selected["themes"] if REFUSED_MARKER in theme]
    assert len(hit) >= 2, "the marker must be in themes of the run"

    assert run.returncode == 0, run.tail()
    assert outcome.metadata["partial"] is False
    assert outcome.metadata["counts"]["puzzles_generated"] == COUNT
    # Those themes failed, spares stood in, and none is in a puzzle.
    failed = outcome.metadata["failed_themes"]
    assert set(hit) <= set(failed), failed
    assert {failed[theme]["kind"] for theme in hit} == {"unembeddable_text"}
    assert all(REFUSED_MARKER in failed[theme]["reason"] for theme in hit)
    assert outcome.metadata["counts"]["spare_themes_used"] >= len(hit)
    themes_made = {
        theme for puzzle in json.loads(outcome.final).values() for theme in puzzle["themes"]
    }
    assert len(themes_made) == 4 * COUNT
    assert not any(REFUSED_MARKER in theme for theme in themes_made)
    assert outcome.final != reference.final
    # One job; its refused texts were neither resubmitted nor requested online.
    (job,) = outcome.jobs
    refused = {text for text in job.texts if REFUSED_MARKER in text}
    assert len(refused) >= len(hit)
    figures = outcome.batch_figures()
    assert figures["texts_refused"] == len(refused)
    assert figures["texts_stored"] == len(job.texts) - len(refused)
    assert figures["jobs_created"] == 1
    assert outcome.methods()["batchEmbedContents"] == 0
    assert outcome.requests() == 0
    assert f"{len(refused)} for good, 0 to try again" in run.stderr


def test_lines_failed_for_a_passing_reason_are_resubmitted(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("passing")

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert len(outcome.jobs) == 2
    first, again = outcome.jobs
    assert first.source.startswith("files/")
    assert again.texts == tuple(first.texts[i] for i in sorted(PASSING_POSITIONS))
    assert again.source == "inline"
    figures = outcome.batch_figures()
    assert (figures["jobs_created"], figures["jobs_failed"]) == (2, 0)
    assert figures["texts_refused"] == figures["texts_failed"] == 0
    assert figures["texts_stored"] == len(first.texts)
    failed = len(PASSING_POSITIONS)
    told = f"{failed} of {len(first.texts)} lines failed (0 for good, {failed} to try again)"
    assert told in outcome.run.stderr


# --- auto mode ------------------------------------------------------------------------------


def test_auto_mode_goes_online_below_batch_min_texts(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("auto-online")

    assert_like_the_reference(outcome, reference)
    assert outcome.jobs == []
    assert outcome.methods()["asyncBatchEmbedContent"] == 0
    assert outcome.requests() == outcome.methods()["batchEmbedContents"] > 0
    assert "below gemini.batch_min_texts 100000" in outcome.run.stderr


def test_auto_mode_makes_jobs_at_or_above_batch_min_texts(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("auto-batch")

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert outcome.batch_figures()["jobs_created"] == len(outcome.jobs) == 1


# --- gemini.batch_timeout_hours ---------------------------------------------------------------


def test_a_job_past_batch_timeout_hours_is_cancelled_and_resubmitted(
    scenarios: Scenarios, reference: Outcome
) -> None:
    outcome = scenarios.get("timeout")
    run = outcome.run

    assert_like_the_reference(outcome, reference)
    assert_all_batch(outcome, reference)
    assert len(outcome.jobs) == 2
    first, again = outcome.jobs
    assert first.cancelled is not None
    # Cancelled once its timeout had passed, long before its 30 s.
    assert TIMEOUT_HOURS * 3600 <= first.cancelled - first.created < ENDLESS_JOB / 2
    assert again.texts == first.texts and again.cancelled is None
    assert again.end_state == BatchState.SUCCEEDED
    told = [line for line in run.warnings() if "gemini.batch_timeout_hours" in line]
    assert len(told) == 1 and first.name in told[0], run.tail()
    assert f"Batch job {first.name} ended JOB_STATE_CANCELLED" in run.stderr
    figures = outcome.batch_figures()
    assert (figures["jobs_created"], figures["jobs_failed"]) == (2, 1)
    assert run.seconds < ENDLESS_JOB
