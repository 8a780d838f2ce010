"""Quotas in tokens and in days, in real runs: `python -m asyncpipe run` against the local server.

- `gemini.requests_per_day`: a budget smaller than the run needs stops it once spent, with
  exit code 3, the completed puzzles written and marked partial. A `--resume` the same day
  sends nothing and stops again; once the budget file's day is moved back a day (what a
  person does, or what midnight Pacific time does), `--resume` finishes the run with the
  same `final_puzzles.json` as a run never stopped, and no text is requested twice.
- The API's per-day quota: the server answers 429 with a per-day QuotaFailure (and a
  RetryInfo of 59 s, as Google does) once its daily quota is spent. The run stops the same
  way, without retrying; after the server's `new_day()`, `--resume` finishes it.
- `gemini.tokens_per_minute`: the limit is set a tenth below what the run sends, so the run
  has to be held back; the server's arrivals, weighed with the documented estimate, never
  hold more than the limit in any 60-second window. The window cannot be shortened, so
  this run takes a little over a minute, mostly asleep on the limiter.

Every scenario has a server of its own and runs on a thread pool from the module's start,
the token run first; the tests then read what each left.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.gemini_server import Arrival, GeminiTestServer, ServerConfig
from tests.support import CHECKPOINT, FINAL, METADATA, load, run_cli, write_params

pytestmark = pytest.mark.slow

KEY = "AIzaSy-asyncpipe-QUOTA-3c8e1f6a2d"
COUNT = 20
#: The exit code of a run stopped by a spent day (README, "Exit codes").
EXIT_DAILY_QUOTA = 3
PARAMS: dict[str, Any] = {
    "gemini.embedding_dimension": 64,
    "concurrency.max_concurrent_requests": 2,
    "concurrency.batch_size": 50,
    "puzzle_generation.candidate_words_per_theme": 20,
}
RUN_ARGS = ("run", "--provider", "gemini", "--count", str(COUNT))
LATENCY = 0.05
#: The share of the reference run's requests a day allows: the stop comes mid-embedding,
#: and what is left fits in the next day's budget.
DAY_SHARE = 0.55
BUDGET = Path("data/cache/daily_requests.json")
PACIFIC = ZoneInfo("America/Los_Angeles")

#: The token run: one puzzle, small batches, a limit a tenth below what it sends.
TOKEN_PARAMS: dict[str, Any] = {**PARAMS, "concurrency.batch_size": 10}
TOKEN_ARGS = ("run", "--provider", "gemini", "--count", "1")
TOKEN_HEADROOM = 1.1
UNREACHED_TOKENS_PER_MINUTE = 10**9
#: Arrivals are dated at the server, up to a few tenths of a second after the client let
#: the request start (a loaded 2-core machine): windows this much shorter than the
#: client's 60 s hold at most what the client let start in 60 s.
ARRIVAL_JITTER = 0.5

RUN_TIMEOUT = 120.0
TOKEN_RUN_TIMEOUT = 300.0


def text_tokens(text: str) -> int:
    """The documented estimate, one token per 4 bytes of UTF-8 rounded up and at least one
    (copied from asyncpipe.embeddings.tokens, so the test does not trust it)."""
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


def arrival_tokens(arrival: Arrival) -> int:
    return sum(text_tokens(text) for text in arrival.texts)


def heaviest_window(arrivals: list[Arrival], width: float) -> int:
    """The most tokens arriving within any window [t, t + width)."""
    timed = sorted((arrival.time, arrival_tokens(arrival)) for arrival in arrivals)
    heaviest, end, weight = 0, 0, 0
    for first, (start, _) in enumerate(timed):
        while end < len(timed) and timed[end][0] < start + width:
            weight += timed[end][1]
            end += 1
        heaviest = max(heaviest, weight)
        weight -= timed[first][1]
    return heaviest


# --- runs -------------------------------------------------------------------------------


@dataclass
class Cli:
    returncode: int
    stderr: str
    seconds: float

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " WARNING " in line]

    def tail(self, lines: int = 30) -> str:
        shown = "\n".join(self.stderr.splitlines()[-lines:])
        return f"[exit code {self.returncode}, stderr tail:]\n{shown}"


def cli(folder: Path, *args: str, timeout: float = RUN_TIMEOUT) -> Cli:
    started = time.monotonic()
    result = run_cli(list(args), cwd=folder, env={"GEMINI_API_KEY": KEY}, timeout=timeout)
    return Cli(result.returncode, result.stderr, time.monotonic() - started)


def new_folder(root: Path, name: str, server: GeminiTestServer, changes: dict[str, Any]) -> Path:
    folder = root / name
    folder.mkdir()
    write_params(folder, {**changes, "gemini.base_url": server.base_url})
    return folder


def server_config(**changes: Any) -> ServerConfig:
    return ServerConfig(valid_keys=frozenset({KEY}), latency=LATENCY, **changes)


@dataclass
class Finished:
    folder: Path
    run: Cli
    final: bytes
    requests: int


@dataclass
class Stopped:
    """What a run stopped by a spent day left, read before anything else touched it."""

    run: Cli
    arrivals: list[Arrival]
    metadata: dict[str, Any]
    final: dict[str, Any] | None
    checkpointed: bool


@dataclass
class DayStop:
    """A run stopped by a spent day, then resumed (the same day, if it says so, then the next)."""

    folder: Path
    server: GeminiTestServer
    day: int
    stopped: Stopped
    budget_after_stop: dict[str, Any] | None
    resumed: Cli
    #: Arrivals of the resume, and the budget file and metadata after it.
    resume_arrivals: list[Arrival]
    budget_after_resume: dict[str, Any] | None
    metadata: dict[str, Any]
    final: bytes
    #: The resume on the same day: its run, and the requests it sent.
    same_day: Cli | None = None
    same_day_requests: int = 0
    #: The same-day resume ran on the same Pacific day as the stop.
    same_day_held: bool = True


@dataclass
class TokenRun:
    limit: int
    run: Cli
    arrivals: list[Arrival]
    metadata: dict[str, Any]


def stopped_state(folder: Path, server: GeminiTestServer, run: Cli) -> Stopped:
    final = load(folder, FINAL) if (folder / FINAL).exists() else None
    return Stopped(
        run, server.arrivals(), load(folder, METADATA), final, (folder / CHECKPOINT).exists()
    )


class Scenarios:
    """Every scenario started at once on threads; `scenarios.get(name)` waits for one."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[GeminiTestServer] = []
        self._pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="quota-run")
        # The token run first: it is the longest, and mostly asleep.
        self._futures: dict[str, Future[Any]] = {
            "tokens": self._pool.submit(self._tokens),
            "reference": self._pool.submit(self._reference),
        }
        self._futures["budget"] = self._pool.submit(self._budget)
        for transport in ("rest", "sdk"):
            self._futures[f"server-{transport}"] = self._pool.submit(self._server_day, transport)

    def get(self, name: str) -> Any:
        return self._futures[name].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for server in self._servers:
            server.close()

    def _server(self, config: ServerConfig) -> GeminiTestServer:
        server = GeminiTestServer(config).start()
        self._servers.append(server)
        return server

    def _day(self) -> int:
        reference: Finished = self.get("reference")
        return math.ceil(DAY_SHARE * reference.requests)

    def _reference(self) -> Finished:
        server = self._server(server_config())
        folder = new_folder(self._root, "reference", server, PARAMS)
        run = cli(folder, *RUN_ARGS)
        final = (folder / FINAL).read_bytes() if (folder / FINAL).exists() else b""
        return Finished(folder, run, final, server.request_count)

    def _budget(self) -> DayStop:
        day = self._day()
        server = self._server(server_config())
        folder = new_folder(
            self._root, "budget", server, {**PARAMS, "gemini.requests_per_day": day}
        )
        stopped_on = datetime.now(PACIFIC).date()
        stopped = stopped_state(folder, server, cli(folder, *RUN_ARGS))
        budget = load(folder, BUDGET) if (folder / BUDGET).exists() else None

        before = server.request_count
        same_day = cli(folder, *RUN_ARGS, "--resume")
        same_day_requests = server.request_count - before
        same_day_held = datetime.now(PACIFIC).date() == stopped_on

        # "The next day": the budget file's day moved back one, as midnight would leave it.
        document = load(folder, BUDGET)
        document["day"] = (date.fromisoformat(document["day"]) - timedelta(days=1)).isoformat()
        (folder / BUDGET).write_text(json.dumps(document), encoding="utf-8")
        return self._resume(
            folder, server, day, stopped, budget, same_day, same_day_requests, same_day_held
        )

    def _server_day(self, transport: str) -> DayStop:
        day = self._day()
        server = self._server(server_config(daily_quota_requests=day))
        folder = new_folder(
            self._root, f"server-{transport}", server, {**PARAMS, "gemini.transport": transport}
        )
        stopped = stopped_state(folder, server, cli(folder, *RUN_ARGS))
        budget = load(folder, BUDGET) if (folder / BUDGET).exists() else None
        server.new_day()
        return self._resume(folder, server, day, stopped, budget)

    def _resume(
        self,
        folder: Path,
        server: GeminiTestServer,
        day: int,
        stopped: Stopped,
        budget: dict[str, Any] | None,
        same_day: Cli | None = None,
        same_day_requests: int = 0,
        same_day_held: bool = True,
    ) -> DayStop:
        before = server.request_count
        resumed = cli(folder, *RUN_ARGS, "--resume")
        return DayStop(
            folder,
            server,
            day,
            stopped,
            budget,
            resumed,
            server.arrivals()[before:],
            load(folder, BUDGET) if (folder / BUDGET).exists() else None,
            load(folder, METADATA),
            (folder / FINAL).read_bytes(),
            same_day,
            same_day_requests,
            same_day_held,
        )

    def _tokens(self) -> TokenRun:
        # What the run sends, measured under a limit too high to hold anything back (any
        # limit turns off the spares' prefetch, as in the limited run); then the limit a
        # tenth below it.
        measuring = self._server(server_config())
        folder = new_folder(
            self._root,
            "tokens-unlimited",
            measuring,
            {**TOKEN_PARAMS, "gemini.tokens_per_minute": UNREACHED_TOKENS_PER_MINUTE},
        )
        measured = cli(folder, *TOKEN_ARGS)
        assert measured.returncode == 0, measured.tail()
        limit = int(sum(map(arrival_tokens, measuring.arrivals())) / TOKEN_HEADROOM)

        server = self._server(server_config())
        folder = new_folder(
            self._root, "tokens", server, {**TOKEN_PARAMS, "gemini.tokens_per_minute": limit}
        )
        run = cli(folder, *TOKEN_ARGS, timeout=TOKEN_RUN_TIMEOUT)
        metadata = load(folder, METADATA) if (folder / METADATA).exists() else {}
        return TokenRun(limit, run, server.arrivals(), metadata)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    started = Scenarios(tmp_path_factory.mktemp("quota-runs"))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def reference(scenarios: Scenarios) -> Finished:
    finished: Finished = scenarios.get("reference")
    assert finished.run.returncode == 0, finished.run.tail()
    assert load(finished.folder, METADATA)["partial"] is False
    return finished


def assert_stopped_by_the_day(stopped: Stopped) -> None:
    """Exit 3, no traceback, some puzzles written and marked partial, the checkpoint kept,
    and the log line that says when to resume."""
    run = stopped.run
    assert run.returncode == EXIT_DAILY_QUOTA, run.tail()
    assert "Traceback" not in run.stderr, run.tail()
    metadata = stopped.metadata
    assert metadata["partial"] is True
    assert metadata["interrupted_by"] == "daily_quota"
    made = metadata["counts"]["puzzles_generated"]
    assert 0 < made < COUNT, run.tail()
    assert stopped.final is not None and len(stopped.final) == made
    assert all("quality" in puzzle for puzzle in stopped.final.values())  # whole, scored
    assert stopped.checkpointed, "the stopped run keeps its checkpoint for --resume"
    # The next midnight Pacific time, and the log line that names it.
    resume_after = datetime.fromisoformat(metadata["resume_after"])
    assert resume_after.astimezone(PACIFIC).time().isoformat() == "00:00:00"
    assert timedelta(0) < resume_after - datetime.now(UTC) <= timedelta(hours=25)
    told = [line for line in run.warnings() if "`run --resume` after midnight Pacific time" in line]
    assert len(told) == 1, run.tail()
    assert "The day's embedding requests are spent" in told[0]
    assert f"{made} of {COUNT} puzzles were completed and written" in told[0]


def assert_resumed_to_the_reference(result: DayStop, reference: Finished) -> None:
    run = result.resumed
    print(
        f"[figure] a day of {result.day} requests: stopped after "
        f"{len(result.stopped.arrivals)} requests ({result.stopped.run.seconds:.1f} s) with "
        f"{result.stopped.metadata['counts']['puzzles_generated']} of {COUNT} puzzles; the "
        f"resume sent {len(result.resume_arrivals)} (reference: {reference.requests} requests)"
    )
    assert run.returncode == 0, run.tail()
    assert result.final == reference.final
    assert result.metadata["partial"] is False
    assert result.metadata["interrupted_by"] is None
    assert "resume_after" not in result.metadata
    assert result.metadata["resumed"] is True
    assert not (result.folder / CHECKPOINT).exists()
    # No repeated work: every text answered once over the stopped run and its resume.
    answered = result.server.texts_requested(answered_only=True)
    again = sorted(text for text, times in answered.items() if times > 1)
    assert again == [], f"texts answered twice: {again[:10]}"


# --- a budget of requests per day -----------------------------------------------------------


def test_a_spent_daily_budget_stops_the_run_with_exit_3_and_a_partial_batch(
    scenarios: Scenarios,
) -> None:
    result: DayStop = scenarios.get("budget")

    assert_stopped_by_the_day(result.stopped)
    # The budget exactly: the server saw that many requests, every one answered.
    assert len(result.stopped.arrivals) == result.day
    assert {arrival.outcome for arrival in result.stopped.arrivals} == {"ok"}
    assert result.budget_after_stop == {
        "day": datetime.now(PACIFIC).date().isoformat(),
        "time_zone": "America/Los_Angeles",
        "requests": result.day,
    }


def test_a_resume_the_same_day_sends_nothing_and_stops_again(scenarios: Scenarios) -> None:
    result: DayStop = scenarios.get("budget")
    if not result.same_day_held:
        pytest.skip("midnight Pacific time came between the stopped run and its resume")

    assert result.same_day is not None
    assert result.same_day.returncode == EXIT_DAILY_QUOTA, result.same_day.tail()
    assert result.same_day_requests == 0
    assert "Traceback" not in result.same_day.stderr


def test_a_resume_the_next_day_finishes_the_run_as_if_never_stopped(
    scenarios: Scenarios, reference: Finished
) -> None:
    result: DayStop = scenarios.get("budget")

    assert_resumed_to_the_reference(result, reference)
    # The next day's count: the resume's own requests, within the budget.
    assert result.budget_after_resume is not None
    assert result.budget_after_resume["day"] == datetime.now(PACIFIC).date().isoformat()
    assert result.budget_after_resume["requests"] == len(result.resume_arrivals) <= result.day
    assert len(result.stopped.arrivals) + len(result.resume_arrivals) <= reference.requests + 2


# --- the API's per-day quota ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["rest", "sdk"])
def test_a_per_day_429_stops_the_run_without_retrying_and_resume_finishes_it(
    scenarios: Scenarios, reference: Finished, transport: str
) -> None:
    result: DayStop = scenarios.get(f"server-{transport}")

    assert_stopped_by_the_day(result.stopped)
    outcomes = Counter(arrival.outcome for arrival in result.stopped.arrivals)
    assert outcomes["ok"] == result.day
    # Only the requests already in flight met the 429: no retry, no storm (its RetryInfo
    # asked for 59 s, and the run ended well before).
    in_flight = PARAMS["concurrency.max_concurrent_requests"]
    assert 1 <= outcomes["daily_quota"] <= in_flight
    assert set(outcomes) == {"ok", "daily_quota"}
    assert result.stopped.run.seconds < 59
    assert result.budget_after_stop is None  # no requests_per_day: no budget file

    assert_resumed_to_the_reference(result, reference)
    assert {arrival.outcome for arrival in result.resume_arrivals} == {"ok"}


# --- tokens per minute ----------------------------------------------------------------------


def test_no_60_second_window_of_a_run_holds_more_than_tokens_per_minute(
    scenarios: Scenarios,
) -> None:
    result: TokenRun = scenarios.get("tokens")
    run = result.run
    assert run.returncode == 0, run.tail()
    assert result.metadata["counts"]["puzzles_generated"] == 1

    sent = sum(map(arrival_tokens, result.arrivals))
    heaviest = heaviest_window(result.arrivals, 60.0 - ARRIVAL_JITTER)
    print(
        f"[figure] tokens_per_minute {result.limit}: {sent} tokens in {len(result.arrivals)} "
        f"requests over {run.seconds:.1f} s; the heaviest window held {heaviest}"
    )
    assert sent > result.limit, "the run must send more than one minute's tokens"
    assert heaviest <= result.limit
    # The limit held the run back, and by no more than it had to.
    assert run.seconds > 60.0 - ARRIVAL_JITTER
    assert heaviest >= 0.8 * result.limit
    # Every request within the largest one the limit allows (a tenth of it): batches of 10
    # texts were cut to fit, and none of the run's texts was too long for a request.
    largest = max(1, int(result.limit * 0.1))
    assert max(map(arrival_tokens, result.arrivals)) <= largest
    assert {arrival.outcome for arrival in result.arrivals} == {"ok"}
    assert result.metadata["run_statistics"]["estimated_tokens"] == sent
