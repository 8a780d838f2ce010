"""Whole runs of the Gemini path: `python -m asyncpipe` subprocesses against the local server.

Each scenario is one CLI run against its own in-process `GeminiTestServer`, which
records every arrival, so a run is checked from the server's side (rate, requests in
flight, texts sent, keys) as well as from its outputs. The runs are independent
processes that spend much of their time waiting (rate limits, latency, retry delays),
so the module starts them together on a thread pool (`runs`), the rate-limited ones
first, and each test waits for the scenarios it inspects. The server's vectors are
random, so puzzle quality is not judged here; only completeness, determinism and what
was sent.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.gemini_server import GeminiTestServer, ServerConfig, expected_embedding
from tests.support import FINAL, METADATA, REPO, run_cli

pytestmark = pytest.mark.slow

KEY = "AIzaSy-asyncpipe-RUNS-4b7d1e9c2a"
WRONG_KEY = "AIzaSy-asyncpipe-WRONGRUN-8c3f5a1e7d"
MODEL = "gemini-embedding-001"
OTHER_MODEL = "gemini-embedding-exp-03-07"
DIMENSION = 64


#: Every scenario: small vectors, the default batch of 100 unless it says otherwise.
#: Neighbour candidates (50 a theme, the older way): the workload the request counts,
#: rates and concurrency caps below were sized for. Members are fewer per theme.
BASE_PARAMS: dict[str, Any] = {
    "gemini.embedding_dimension": DIMENSION,
    "candidates.source": "neighbours",
}
#: A run that has not finished by then is killed and recorded as timed out.
RUN_TIMEOUT = 40.0
#: Runs at once: enough that the waiting ones (rate limit, retries) do not hold up the others.
WORKERS = 5
#: The longest the other runs wait for the head starts to be past their first burst.
HEAD_START_LIMIT = 15.0
#: Arrival times are taken at the server, after the client's event loop has encoded and
#: sent the request and the server's thread has been scheduled: on this loaded 2-core
#: machine up to about 0.1 s late (up to 0.4 s without the head start). A limiter running
#: at rpm/60 instead of (rpm - burst)/60 still exceeds the bound by a request or more.
ARRIVAL_JITTER = 0.4

# The rate scenario: 41 requests of 5 texts at 120 per minute, bursts of 8.
RATE_RPM = 120
RATE_BURST = 8
# The bad-key-concurrent scenario: seconds the server takes to answer.
BAD_KEY_LATENCY = 0.3
# The throttle-burst scenario: this many 429s at first, each asking for this many seconds.
THROTTLE_BURST = 8
THROTTLE_DELAY = 0.5


@dataclass
class Scenario:
    """One CLI run: the server it talks to, the params it changes, how it is started."""

    server: ServerConfig | None = field(
        default_factory=lambda: ServerConfig(valid_keys=frozenset({KEY}))
    )
    params: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ("run", "--count", "2", "--log-level", "DEBUG")
    key: str | None = KEY
    #: "env": GOOGLE_GEMINI_BASE_URL; "params": gemini.base_url.
    base_url_via: str = "env"
    #: Run in a copy of this scenario's folder, after it has finished.
    after: str | None = None
    #: Started alone, the others only once it is past its first burst of requests: the
    #: burst goes out while the process is busiest, and other runs competing for the two
    #: cores then delay its requests by tenths of a second, blurring the rate measured.
    head_start: bool = False
    #: The first `count` requests are answered with `status`, asking for `delay` seconds.
    fail_first: tuple[int, int, float] | None = None
    timeout: float = RUN_TIMEOUT


@dataclass
class Run:
    folder: Path
    server: GeminiTestServer | None
    #: None when the run was killed after its scenario's timeout.
    returncode: int | None
    stdout: str
    stderr: str
    #: time.monotonic() (the server's clock for arrivals) when the process ended.
    finished: float

    def load(self, relative: Path) -> Any:
        return json.loads((self.folder / relative).read_text(encoding="utf-8"))

    @property
    def statistics(self) -> dict[str, Any]:
        return dict(self.load(METADATA)["run_statistics"])

    @property
    def gemini(self) -> GeminiTestServer:
        assert self.server is not None
        return self.server

    def assert_succeeded(self) -> None:
        assert self.returncode is not None, f"killed by the timeout:\n{self.stderr}"
        assert self.returncode == 0, self.stderr


def storm_params(transport: str) -> dict[str, Any]:
    return {
        "gemini.transport": transport,
        "concurrency.batch_size": 20,
        "gemini.retry_base_delay": 0.05,
        "gemini.max_retries": 8,
    }


def scenarios() -> dict[str, Scenario]:
    table: dict[str, Scenario] = {}
    for transport in ("rest", "sdk"):
        # Submitted first: the longest runs, mostly asleep on the rate limiter.
        table[f"rate-{transport}"] = Scenario(
            params={
                "gemini.transport": transport,
                "gemini.requests_per_minute": RATE_RPM,
                "concurrency.max_concurrent_requests": RATE_BURST,
                "concurrency.batch_size": 5,
            },
            args=("run", "--count", "1"),
            head_start=True,
        )
    for transport in ("rest", "sdk"):
        # 2 requests per rolling second for 5 batches; 0.1 s per answer, so that several
        # requests are in flight when the quota runs out, as against the real API.
        table[f"quota-{transport}"] = Scenario(
            server=ServerConfig(
                valid_keys=frozenset({KEY}), quota_requests=2, quota_window=1.0, latency=0.1
            ),
            params={**storm_params(transport), "concurrency.batch_size": 100},
            args=("run", "--count", "2"),
        )
    # The first wave of 8 requests all answered 429, each asking for 0.5 s; then no quota.
    table["throttle-burst"] = Scenario(
        server=ServerConfig(valid_keys=frozenset({KEY}), latency=0.1),
        params={**storm_params("rest"), "concurrency.batch_size": 25},
        args=("run", "--count", "1"),
        fail_first=(THROTTLE_BURST, 429, THROTTLE_DELAY),
        timeout=25.0,
    )
    for transport in ("rest", "sdk"):
        table[f"clean-{transport}"] = Scenario(params={"gemini.transport": transport})
    table["concurrency-1"] = Scenario(params={"concurrency.max_concurrent_requests": 1})
    table["concurrency-16"] = Scenario(params={"concurrency.max_concurrent_requests": 16})
    for transport in ("rest", "sdk"):
        table[f"in-flight-{transport}"] = Scenario(
            server=ServerConfig(valid_keys=frozenset({KEY}), latency=0.2),
            params={
                "gemini.transport": transport,
                "concurrency.max_concurrent_requests": 4,
                "concurrency.batch_size": 10,
            },
            args=("run", "--count", "1"),
            base_url_via="params",
        )
        # Seed 3 draws a drop, a 500 and a 503 among the first 20 answers.
        table[f"errors-{transport}"] = Scenario(
            server=ServerConfig(
                valid_keys=frozenset({KEY}),
                server_error_rate=0.15,
                unavailable_rate=0.15,
                drop_rate=0.05,
                seed=3,
            ),
            params=storm_params(transport),
            args=("run", "--count", "2"),
        )
        table[f"bad-key-{transport}"] = Scenario(
            params={
                "gemini.transport": transport,
                "concurrency.max_concurrent_requests": 1,
                # A quota so large that the rate limit never spaces requests out: only
                # the failure itself can stop the next request.
                "gemini.requests_per_minute": 1_000_000,
                # A retry would wait 30 to 60 s: a run that ends sooner did not retry.
                "gemini.retry_base_delay": 60.0,
            },
            args=("run", "--count", "2", "--provider", "gemini"),
            key=WRONG_KEY,
        )
    # The default 8 requests in flight, 21 batches: 13 are queued when the 400s come back.
    table["bad-key-concurrent"] = Scenario(
        server=ServerConfig(valid_keys=frozenset({KEY}), latency=BAD_KEY_LATENCY),
        params={"concurrency.batch_size": 20},
        args=("run", "--count", "2", "--provider", "gemini"),
        key=WRONG_KEY,
    )
    table["no-key"] = Scenario(
        server=None, args=("run", "--count", "2", "--provider", "gemini"), key=None
    )
    table["warm"] = Scenario(after="clean-rest")
    table["other-model"] = Scenario(params={"gemini.model_id": OTHER_MODEL}, after="clean-rest")
    table["other-dimension"] = Scenario(
        params={"gemini.embedding_dimension": 32}, after="clean-rest"
    )
    return table


class Runs:
    """Every scenario started at once; `runs[name]` waits for one and returns it."""

    def __init__(self, root: Path, table: dict[str, Scenario]) -> None:
        self._root = root
        self._table = table
        self._futures: dict[str, Future[Run]] = {}
        self._servers: dict[str, GeminiTestServer] = {}
        self._head_starters = {name for name, scenario in table.items() if scenario.head_start}
        self._others_may_start = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cli-run")
        # In table order, and the queue is first in, first out: a scenario that follows
        # another is picked up only once that one is running, so waiting for it in a
        # worker cannot starve the pool.
        for name in table:
            self._futures[name] = self._pool.submit(self._run, name)
        self._watcher = threading.Thread(target=self._watch_head_start, daemon=True)
        self._watcher.start()

    def __getitem__(self, name: str) -> Run:
        return self._futures[name].result()

    def close(self) -> None:
        self._others_may_start.set()
        self._pool.shutdown(wait=True)

    def _watch_head_start(self) -> None:
        """Let the other scenarios start once every head start is past its first burst."""
        deadline = time.monotonic() + HEAD_START_LIMIT
        while time.monotonic() < deadline:
            if all(
                self._futures[name].done()
                or (name in self._servers and self._servers[name].request_count > RATE_BURST)
                for name in self._head_starters
            ):
                break
            time.sleep(0.05)
        self._others_may_start.set()

    def _run(self, name: str) -> Run:
        scenario = self._table[name]
        if not scenario.head_start:
            self._others_may_start.wait()
        folder = self._root / name
        if scenario.after is not None:
            shutil.copytree(self[scenario.after].folder, folder)
            # The same batch again: with the history that run started from, not the one
            # it appended to (a recorded batch is not drawn again).
            shutil.rmtree(folder / "data" / "history", ignore_errors=True)
        else:
            folder.mkdir(parents=True)
        params = {**BASE_PARAMS, **scenario.params}
        env = {"GEMINI_API_KEY": scenario.key} if scenario.key is not None else {}
        if scenario.server is None:
            write_params(folder, params)
            return launch(folder, None, scenario.args, env, scenario.timeout)
        with GeminiTestServer(scenario.server) as server:
            self._servers[name] = server
            if scenario.fail_first is not None:
                count, status, delay = scenario.fail_first
                server.fail_next(count, status, retry_delay=delay)
            if scenario.base_url_via == "params":
                params["gemini.base_url"] = server.base_url
            else:
                env["GOOGLE_GEMINI_BASE_URL"] = server.base_url
            write_params(folder, params)
            return launch(folder, server, scenario.args, env, scenario.timeout)


def write_params(folder: Path, changes: dict[str, Any]) -> None:
    settings = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        settings.setdefault(section, {})[key] = value
    (folder / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def launch(
    folder: Path,
    server: GeminiTestServer | None,
    args: tuple[str, ...],
    env: dict[str, str],
    timeout: float,
) -> Run:
    try:
        result = run_cli(list(args), cwd=folder, env=env, timeout=timeout)
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as expired:
        returncode, stdout, stderr = None, _text(expired.stdout), _text(expired.stderr)
    return Run(folder, server, returncode, stdout, stderr, time.monotonic())


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    book = Runs(tmp_path_factory.mktemp("gemini-runs"), scenarios())
    try:
        yield book
    finally:
        book.close()


# --- helpers ----------------------------------------------------------------------------


def assert_puzzles_made(run: Run, count: int) -> None:
    puzzles = run.load(FINAL)
    assert list(puzzles) == [f"puzzle_{number}" for number in range(1, count + 1)]
    for name, puzzle in puzzles.items():
        assert len(puzzle["themes"]) == 4 == len(set(puzzle["themes"])), name
        assert len(puzzle["words"]) == 16 == len(set(puzzle["words"])), name
    counts = run.load(METADATA)["counts"]
    assert counts["puzzles_generated"] == counts["puzzles_requested"] == count


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def files_holding(folder: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def arrival_times(server: GeminiTestServer) -> list[float]:
    return sorted(arrival.time for arrival in server.arrivals())


def most_in_any_window(times: list[float], seconds: float) -> int:
    best, first = 0, 0
    for last, now in enumerate(times):
        while now - times[first] >= seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


CLEAN = ["clean-rest", "clean-sdk", "concurrency-1", "concurrency-16"]
CLEAN_LIMITED = [*CLEAN, "rate-rest", "rate-sdk", "in-flight-rest", "in-flight-sdk"]
TRANSPORTS = ["rest", "sdk"]


# --- a clean run ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_run_makes_every_puzzle_from_the_servers_vectors(runs: Runs, transport: str) -> None:
    run = runs[f"clean-{transport}"]

    run.assert_succeeded()
    assert_puzzles_made(run, 2)
    provider = run.load(METADATA)["provider"]
    assert (provider["name"], provider["model"], provider["dimension"]) == (
        "gemini",
        MODEL,
        DIMENSION,
    )
    # The scores are cosines of the server's vectors for the theme and each word.
    puzzle = run.load(FINAL)["puzzle_1"]
    for position, word in enumerate(puzzle["words"]):
        theme = puzzle["themes"][position // 4]
        cosine = float(
            unit(expected_embedding(MODEL, theme, DIMENSION))
            @ unit(expected_embedding(MODEL, word, DIMENSION))
        )
        assert puzzle["theme_similarity_scores"][position] == pytest.approx(cosine, abs=1e-5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_statistics_match_what_the_server_saw(runs: Runs, transport: str) -> None:
    run = runs[f"clean-{transport}"]
    arrivals = run.gemini.arrivals()

    statistics = run.statistics
    assert statistics["requests"] == len(arrivals) > 0
    assert statistics["texts_requested"] == sum(arrival.text_count for arrival in arrivals)
    assert statistics["retries"] == statistics["throttled_429"] == 0
    assert statistics["failed_requests"] == 0
    assert {arrival.outcome for arrival in arrivals} == {"ok"}
    assert {(arrival.model, arrival.dimension) for arrival in arrivals} == {(MODEL, DIMENSION)}
    assert {arrival.api_key for arrival in arrivals} == {KEY}


@pytest.mark.parametrize("name", CLEAN_LIMITED)
def test_requests_are_close_to_distinct_texts_over_batch_size(runs: Runs, name: str) -> None:
    run = runs[name]
    run.assert_succeeded()
    batch_size = yaml.safe_load((run.folder / "params.yaml").read_text())["concurrency"][
        "batch_size"
    ]

    distinct = len(run.gemini.texts_requested())
    requests = run.gemini.request_count

    assert distinct > 2 * batch_size  # enough texts that batching shows
    assert math.ceil(distinct / batch_size) <= requests <= math.ceil(distinct / batch_size) + 2
    assert max(arrival.text_count for arrival in run.gemini.arrivals()) <= batch_size


@pytest.mark.parametrize("name", CLEAN_LIMITED)
def test_no_text_is_requested_twice_in_a_run_without_failures(runs: Runs, name: str) -> None:
    run = runs[name]
    run.assert_succeeded()

    counts = run.gemini.texts_requested()

    assert counts and set(counts.values()) == {1}, counts.most_common(3)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_texts_several_themes_share_are_requested_once(runs: Runs, transport: str) -> None:
    statistics = runs[f"clean-{transport}"].statistics

    # Themes share some candidates: more texts were asked for than were sent for them.
    asked_for = statistics["texts_requested"] - statistics["texts_prefetched"]
    assert statistics["texts_asked"] > asked_for
    assert statistics["in_flight_dedup_hits"] + statistics["cache_hits_memory"] > 0
    assert statistics["texts_requested"] == len(runs[f"clean-{transport}"].gemini.texts_requested())


def test_sdk_and_rest_transports_write_the_same_puzzles(runs: Runs) -> None:
    rest, sdk = runs["clean-rest"], runs["clean-sdk"]
    rest.assert_succeeded()
    sdk.assert_succeeded()

    assert (sdk.folder / FINAL).read_bytes() == (rest.folder / FINAL).read_bytes()


def test_final_puzzles_do_not_depend_on_max_concurrent_requests(runs: Runs) -> None:
    outputs = {}
    for name in ("concurrency-1", "clean-rest", "concurrency-16"):
        runs[name].assert_succeeded()
        outputs[name] = (runs[name].folder / FINAL).read_bytes()

    assert outputs["concurrency-1"] == outputs["clean-rest"] == outputs["concurrency-16"]
    assert runs["concurrency-1"].gemini.max_in_flight == 1
    assert runs["concurrency-16"].gemini.max_in_flight > 1


# --- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requests_per_minute_is_never_exceeded(runs: Runs, transport: str) -> None:
    run = runs[f"rate-{transport}"]
    run.assert_succeeded()
    times = arrival_times(run.gemini)
    steady_per_second = (RATE_RPM - RATE_BURST) / 60
    span = times[-1] - times[0]

    # The limiter bound: unlimited, the 41 requests would take well under a second.
    assert len(times) >= 40
    assert span >= 0.8 * (len(times) - RATE_BURST) / steady_per_second
    for seconds in (0.5, 1, 2, 4, 8, 12, 16, span):
        allowed = RATE_BURST + steady_per_second * (seconds + ARRIVAL_JITTER)
        seen = most_in_any_window(times, seconds)
        assert seen <= allowed, f"{seen} requests within {seconds:.1f} s, at most {allowed:.1f}"
    assert run.gemini.max_requests_in_any_window(60) <= RATE_RPM


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_requests_in_flight_never_exceed_max_concurrent_requests(
    runs: Runs, transport: str
) -> None:
    run = runs[f"in-flight-{transport}"]
    run.assert_succeeded()

    # With 0.2 s per answer and 21 requests, the cap is reached, and never passed.
    assert run.gemini.max_in_flight == 4
    assert run.statistics["max_requests_in_flight"] <= 4
    assert run.gemini.request_count >= 20


# --- storms -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_429_storm_ends_with_every_puzzle_made(runs: Runs, transport: str) -> None:
    run = runs[f"quota-{transport}"]

    run.assert_succeeded()
    assert_puzzles_made(run, 2)
    outcomes = Counter(arrival.outcome for arrival in run.gemini.arrivals())
    statistics = run.statistics
    assert outcomes["quota"] > 0
    assert statistics["throttled_429"] == outcomes["quota"]
    assert statistics["retries"] == outcomes["quota"] > 0
    assert statistics["failed_requests"] == 0
    assert statistics["requests"] == run.gemini.request_count


def test_a_burst_of_429s_costs_about_the_delay_the_server_asked_for(runs: Runs) -> None:
    run = runs["throttle-burst"]
    arrivals = sorted(run.gemini.arrivals(), key=lambda arrival: arrival.time)
    throttled = [arrival.time for arrival in arrivals if arrival.outcome == "quota"]
    assert len(throttled) == THROTTLE_BURST
    after = [arrival.time for arrival in arrivals if arrival.time > throttled[-1]]
    gaps = [round(later - earlier, 2) for earlier, later in zip([throttled[-1], *after], after)]

    # Each 429 asked for 0.5 s, and the quota is free again at once: the rest of the
    # batches (about 9) should all be sent within a few seconds of the last 429.
    assert run.returncode == 0, f"killed by the timeout; requests after the 429s: {gaps} s apart"
    assert after[-1] - throttled[-1] < 5.0, f"requests after the 429s came {gaps} s apart"
    assert run.statistics["embedding_seconds"] < 10.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_5xx_and_dropped_connection_storm_ends_with_every_puzzle_made(
    runs: Runs, transport: str
) -> None:
    run = runs[f"errors-{transport}"]

    run.assert_succeeded()
    assert_puzzles_made(run, 2)
    outcomes = Counter(arrival.outcome for arrival in run.gemini.arrivals())
    assert {"drop", "server_error", "unavailable"} <= set(outcomes), outcomes
    statistics = run.statistics
    assert statistics["retries"] == run.gemini.request_count - outcomes["ok"] > 0
    assert statistics["throttled_429"] == 0
    assert statistics["failed_requests"] == 0
    assert run.load(METADATA)["failed_themes"] == {}


# --- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_key_exits_2_with_one_clear_line_well_before_any_retry(
    runs: Runs, transport: str
) -> None:
    run = runs[f"bad-key-{transport}"]

    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    (line,) = error_lines(run.stderr)
    assert "400" in line and "API key not valid" in line
    first_answer = run.gemini.arrivals()[0].time
    assert run.finished - first_answer < 10.0  # a retry would have waited 30 s or more
    assert not (run.folder / FINAL).exists()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_key_costs_exactly_one_request(runs: Runs, transport: str) -> None:
    run = runs[f"bad-key-{transport}"]
    assert run.returncode == 2, run.stderr

    arrivals = run.gemini.arrivals()

    assert [arrival.outcome for arrival in arrivals] == ["bad_key"]


def test_after_a_bad_key_answer_no_further_request_starts(runs: Runs) -> None:
    run = runs["bad-key-concurrent"]
    assert run.returncode == 2, run.stderr
    (line,) = error_lines(run.stderr)
    assert "API key not valid" in line

    arrivals = sorted(run.gemini.arrivals(), key=lambda arrival: arrival.time)
    first_answer = arrivals[0].time + BAD_KEY_LATENCY

    # The first wave was in flight before any answer; nothing may follow the answer.
    assert 1 <= len(arrivals) <= 8
    assert [arrival.time for arrival in arrivals if arrival.time >= first_answer] == []


def test_gemini_without_its_key_exits_2_before_any_stage(runs: Runs) -> None:
    run = runs["no-key"]

    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    (line,) = error_lines(run.stderr)
    assert "GEMINI_API_KEY" in line
    assert not (run.folder / "data").exists()
    assert not (run.folder / "reports").exists()


@pytest.mark.parametrize(
    "name",
    [
        "clean-rest",
        "clean-sdk",
        "quota-rest",
        "errors-sdk",
        "bad-key-rest",
        "bad-key-sdk",
        "bad-key-concurrent",
    ],
)
def test_the_key_never_appears_in_logs_or_output_files(runs: Runs, name: str) -> None:
    run = runs[name]
    scenario_key = WRONG_KEY if name.startswith("bad-key") else KEY
    assert run.gemini.arrivals()[0].api_key == scenario_key  # the run did use it

    assert scenario_key not in run.stderr
    assert scenario_key not in run.stdout
    assert files_holding(run.folder, scenario_key) == []
    if run.returncode == 0:
        assert scenario_key not in (run.folder / METADATA).read_text(encoding="utf-8")


# --- the persistent store ---------------------------------------------------------------


def test_a_warm_rerun_makes_no_request_and_writes_the_same_puzzles(runs: Runs) -> None:
    cold, warm = runs["clean-rest"], runs["warm"]
    cold.assert_succeeded()
    warm.assert_succeeded()

    assert warm.gemini.request_count == 0
    assert (warm.folder / FINAL).read_bytes() == (cold.folder / FINAL).read_bytes()
    statistics = warm.statistics
    assert statistics["requests"] == 0
    # Every text the cold run's themes asked for comes from disk; of the texts its plans
    # prefetched for spares, only those a spare round asked for.
    sent, prefetched = cold.statistics["texts_requested"], cold.statistics["texts_prefetched"]
    assert sent - prefetched <= statistics["cache_hits_disk"] <= sent


@pytest.mark.parametrize(
    ("name", "model", "dimension"),
    [("other-model", OTHER_MODEL, DIMENSION), ("other-dimension", MODEL, 32)],
)
def test_a_model_or_dimension_change_misses_the_store(
    runs: Runs, name: str, model: str, dimension: int
) -> None:
    cold, changed = runs["clean-rest"], runs[name]
    changed.assert_succeeded()

    arrivals = changed.gemini.arrivals()
    assert {(arrival.model, arrival.dimension) for arrival in arrivals} == {(model, dimension)}
    assert changed.gemini.texts_requested() == cold.gemini.texts_requested()
    assert changed.statistics["cache_hits_disk"] == 0
    provider = changed.load(METADATA)["provider"]
    assert (provider["model"], provider["dimension"]) == (model, dimension)
