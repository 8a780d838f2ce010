"""Benchmark of the Gemini embedding path against the local test server (`make bench`).

Everything is measured in one run and reported as ratios, because this machine
is noisy. It starts `tests.gemini_server` as a separate process (300 ms latency,
so the server's CPU is not ours) and measures, for 3072 and 768 dimensions:

- a whole `asyncpipe run` of 80 puzzles (320 themes, ~50 candidates each) from a
  cold cache, in a subprocess: texts/s and requests/s against the bound
  min(RPM/60, max_concurrent/latency) x texts per request, requests and texts
  sent per puzzle, wall time and peak RSS;
- a warm rerun: requests sent (should be 0) and wall time;
- CPU time per decoded vector for both transports (rest: httpx + msgspec;
  sdk: google-genai), from batches of 100 texts;
- the naive way (one theme per request, one request at a time, no cache) over a
  sample of themes, as a throughput ratio;
- the solver on one core: ms per puzzle (median, p90) for `score_puzzle`, for the
  solver alone (`best_splits`, by halves) and for the table of every split it used
  to sum, as a ratio, on seeded random puzzles. `--only solver` measures this alone,
  with no server and no run, in seconds.

Only 127.0.0.1 is contacted. Results go to stdout and to reports/benchmark.json
(reports/solver_benchmark.json with `--only solver`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asyncpipe.embeddings.providers.gemini import GeminiProvider  # noqa: E402
from asyncpipe.settings.sections import Gemini  # noqa: E402

API_KEY = "bench-key"
LATENCY = 0.3
PUZZLES = 80
NAIVE_THEMES = 24
#: Random puzzles the solver section times, each way.
SOLVER_PUZZLES = 40


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=PUZZLES)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument(
        "--dimensions", type=int, nargs="+", help="default: 3072 768 (--only solver: 50 3072)"
    )
    parser.add_argument("--output", type=Path, help="default: reports/benchmark.json")
    parser.add_argument(
        "--only", choices=["solver"], help="solver: the solver section alone, no server"
    )
    parser.add_argument("--solver-puzzles", type=int, default=SOLVER_PUZZLES)
    arguments = parser.parse_args()

    if arguments.dimensions is None:
        arguments.dimensions = [50, 3072] if arguments.only == "solver" else [3072, 768]
    if arguments.only == "solver":
        output = arguments.output or REPO / "reports" / "solver_benchmark.json"
        solver: dict[str, Any] = {}
        for dimension in arguments.dimensions:
            solver[str(dimension)] = _solver_time(dimension, arguments.solver_puzzles)
            _print_solver(dimension, solver[str(dimension)])
        _write(output, {"solver_ms_per_puzzle": solver})
        return 0
    results: dict[str, Any] = {"latency_seconds": arguments.latency, "runs": {}}
    with _Server(arguments.latency) as server:
        for dimension in arguments.dimensions:
            print(f"\n== {dimension} dimensions ==", flush=True)
            results["runs"][str(dimension)] = _measure(server.url, dimension, arguments)
    _write(arguments.output or REPO / "reports" / "benchmark.json", results)
    return 0


def _write(output: Path, results: dict[str, Any]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {output}")


def _measure(url: str, dimension: int, arguments: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="asyncpipe-bench-") as folder:
        # The test server encodes a vector the first time it serves it (~0.3 ms of its CPU
        # per 3072 values, on the cores we measure on): a throwaway run warms its cache,
        # so the measured run sees the configured latency, as it would from the real API.
        scratch = Path(folder) / "warm-up"
        scratch.mkdir()
        _run_cli(scratch, _params(scratch, url, dimension), arguments.puzzles)
        workdir = Path(folder) / "measured"
        workdir.mkdir()
        params = _params(workdir, url, dimension)
        cold = _run_cli(workdir, params, arguments.puzzles)
        # The same batch again, so with the history the cold run started from.
        (workdir / "data/history/published.jsonl").unlink(missing_ok=True)
        warm = _run_cli(workdir, params, arguments.puzzles)
        themes = json.loads((workdir / "data/candidates/candidate_words.json").read_text())
    statistics = cold["metadata"]["run_statistics"]
    settings = params["gemini"]
    concurrency = params["concurrency"]
    seconds = statistics["embedding_seconds"]
    requests = statistics["requests"]
    texts = statistics["texts_requested"]
    texts_per_request = texts / requests if requests else 0.0
    request_bound = min(
        settings["requests_per_minute"] / 60,
        concurrency["max_concurrent_requests"] / arguments.latency,
    )
    text_bound = request_bound * concurrency["batch_size"]
    figures["cold_run"] = {
        "wall_seconds": round(cold["wall"], 2),
        "embedding_seconds": seconds,
        "peak_rss_mb": round(cold["peak_rss_kb"] / 1024, 1),
        "requests": requests,
        "texts_sent": texts,
        "requests_per_puzzle": round(requests / arguments.puzzles, 2),
        "texts_per_puzzle": round(texts / arguments.puzzles, 1),
        "texts_per_second": round(texts / seconds, 1),
        "requests_per_second": round(requests / seconds, 2),
        "request_bound_per_second": round(request_bound, 2),
        "text_bound_per_second": round(text_bound, 1),
        "ratio_to_text_bound": round(texts / seconds / text_bound, 3),
        "ratio_to_request_bound_at_actual_batch": round(
            texts / seconds / (request_bound * texts_per_request), 3
        ),
        # The same bound with the latency the client actually saw (the server's 300 ms
        # plus transfer and the client's own queueing): what the schedule can reach.
        "ratio_to_bound_at_measured_p50": round(
            texts
            / seconds
            / (
                min(
                    settings["requests_per_minute"] / 60,
                    concurrency["max_concurrent_requests"] / statistics["latency_p50_seconds"],
                )
                * texts_per_request
            ),
            3,
        ),
        "latency_p50": statistics["latency_p50_seconds"],
        "latency_p95": statistics["latency_p95_seconds"],
        "limiter_wait_seconds": statistics["limiter_wait_seconds"],
        "loop_lag_p50_ms": statistics.get("loop_lag_p50_ms"),
        "loop_lag_p99_ms": statistics.get("loop_lag_p99_ms"),
        "scoring_seconds": statistics["scoring_seconds"],
        "scoring_workers": statistics["scoring_workers"],
    }
    figures["warm_rerun"] = {
        "wall_seconds": round(warm["wall"], 2),
        "requests": warm["metadata"]["run_statistics"]["requests"],
        "cache_hits_disk": warm["metadata"]["run_statistics"]["cache_hits_disk"],
    }
    figures["decode_cpu_ms_per_vector"] = asyncio.run(_decode_cost(url, dimension))
    figures["solver_ms_per_puzzle"] = _solver_time(dimension, arguments.solver_puzzles)
    naive = asyncio.run(_naive(url, dimension, themes, arguments.latency))
    figures["naive"] = naive
    figures["sustained"] = asyncio.run(_sustained(url, dimension, arguments.latency))
    figures["speedup_vs_naive_texts_per_second"] = round(
        (texts / seconds) / naive["texts_per_second"], 1
    )
    _print(dimension, figures)
    return figures


def _solver_time(dimension: int, puzzles: int) -> dict[str, float | None]:
    """ms per puzzle on one core, in this process, over the same seeded random puzzles:
    `score_puzzle`, the solver alone (`best_splits`) and the table of every split
    (the reference the solver's tests check it against), each table built once first.

    The process is pinned to one CPU for the section, so numpy's threads cannot spread.
    """
    from asyncpipe.io.lexicon_file import load_lexicon
    from asyncpipe.puzzle.scoring import score_puzzle
    from asyncpipe.puzzle.solver import best_splits, group_scores, prepare, split_table

    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity is not None:
        os.sched_setaffinity(0, {min(affinity)})
    try:
        # The tables are built once per process: timed the first time, None after.
        built = split_table.cache_info().currsize > 0
        started = time.perf_counter()
        prepare(4, 4)
        halves_build = None if built else (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        table = split_table(4, 4)
        table_build = None if built else (time.perf_counter() - started) * 1000

        def by_table(similarity: np.ndarray) -> int:
            # The best and runner-up by summing each split's four groups, as the solver
            # did before it met in the middle (and still does for other shapes).
            scores = group_scores(similarity, 4)
            totals = scores[table[:, 0]]
            for column in range(1, 4):
                totals += scores[table[:, column]]
            best = int(np.argmax(totals))
            totals[best] = -np.inf
            return best + int(np.argmax(totals))

        # Seeded unit vectors (the solver's work does not depend on them) and real words,
        # lexicon members, since the look-alike tests' cost depends on word lengths.
        generator = np.random.default_rng(0)
        vocabulary = sorted(
            {word for category in load_lexicon().categories.values() for word in category.members}
        )
        grids = []
        for _ in range(puzzles):
            words = generator.normal(size=(16, dimension)).astype(np.float32)
            words /= np.linalg.norm(words, axis=1, keepdims=True)
            themes = generator.normal(size=(4, dimension)).astype(np.float32)
            names = [str(word) for word in generator.choice(vocabulary, 16, replace=False)]
            similarity = words.astype(np.float64) @ words.T.astype(np.float64)
            grids.append((words, themes, names, similarity))
        # Untimed: the first call reads the lexicon for variant keys, the first few
        # fault in the tables' pages.
        for words, themes, names, similarity in grids[:3]:
            score_puzzle(words, themes, names)
            best_splits(similarity, 4, 4)
            by_table(similarity)
        # One way at a time over all puzzles, as a worker runs: interleaved, the table's
        # 40 MB of reads would evict the halves' tables from the cache between puzzles.
        timings: dict[str, list[float]] = {"score_puzzle": [], "best_splits": [], "table": []}
        for words, themes, names, _ in grids:
            started = time.perf_counter()
            score_puzzle(words, themes, names)
            timings["score_puzzle"].append((time.perf_counter() - started) * 1000)
        for *_, similarity in grids:
            started = time.perf_counter()
            best_splits(similarity, 4, 4)
            timings["best_splits"].append((time.perf_counter() - started) * 1000)
        for *_, similarity in grids:
            started = time.perf_counter()
            by_table(similarity)
            timings["table"].append((time.perf_counter() - started) * 1000)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    figures: dict[str, float | None] = {
        "puzzles": puzzles,
        "halves_build_ms": None if halves_build is None else round(halves_build, 1),
        "table_build_ms": None if table_build is None else round(table_build, 1),
    }
    for name, values in timings.items():
        figures[f"{name}_median_ms"] = round(float(np.median(values)), 2)
        figures[f"{name}_p90_ms"] = round(float(np.percentile(values, 90)), 2)
    figures["table_to_best_splits_ratio"] = round(
        float(np.median(timings["table"])) / float(np.median(timings["best_splits"])), 1
    )
    return figures


def _print_solver(dimension: int, figures: dict[str, float | None]) -> None:
    halves, table = figures["halves_build_ms"], figures["table_build_ms"]
    print(
        f"solver, {dimension} dims, one core, {figures['puzzles']} puzzles "
        "(ms per puzzle, median / p90):\n"
        f"  score_puzzle {figures['score_puzzle_median_ms']} / {figures['score_puzzle_p90_ms']}; "
        f"best_splits {figures['best_splits_median_ms']} / {figures['best_splits_p90_ms']} "
        f"(tables: {'built' if halves is None else f'{halves} ms'} once per process)\n"
        f"  table of every split {figures['table_median_ms']} / {figures['table_p90_ms']} "
        f"(table: {'built' if table is None else f'{table} ms'} once): "
        f"{figures['table_to_best_splits_ratio']}x best_splits"
    )


def _params(workdir: Path, url: str, dimension: int) -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gemini"].update(base_url=url, embedding_dimension=dimension, transport="rest")
    params["output"]["embedding_table_format"] = "parquet"
    params["logging"]["level"] = "WARNING"
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def _run_cli(workdir: Path, params: dict[str, Any], puzzles: int) -> dict[str, Any]:
    environment = dict(os.environ, GEMINI_API_KEY=API_KEY)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncpipe", "run", "--count", str(puzzles), "--provider", "gemini"],
        cwd=workdir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"asyncpipe run exited {code}:\n{stderr}")
    metadata = json.loads((workdir / "data/outputs/puzzle_metadata.json").read_text())
    return {"wall": wall, "peak_rss_kb": usage.ru_maxrss, "metadata": metadata}


async def _decode_cost(url: str, dimension: int) -> dict[str, float]:
    """Client CPU per vector for each transport: 10 batches of 100 texts, after a warm-up."""
    costs: dict[str, float] = {}
    for transport in ("rest", "sdk"):
        settings = Gemini(base_url=url, embedding_dimension=dimension, transport=transport)
        provider = GeminiProvider(settings, API_KEY)
        try:
            batches = [[f"decode {n} {i}" for i in range(100)] for n in range(11)]
            await provider.embed(batches[0])
            started = time.process_time()
            for batch in batches[1:]:
                await provider.embed(batch)
            vectors = 100 * (len(batches) - 1)
            costs[transport] = round((time.process_time() - started) / vectors * 1000, 3)
        finally:
            await provider.aclose()
    return costs


SUSTAINED_TEXTS = 24_000


async def _sustained(url: str, dimension: int, latency: float) -> dict[str, float]:
    """The engine alone on a long stream (240 full requests, 30 rounds of 8), so the
    first and last round weigh little: how close the steady state comes to the bound."""
    from asyncpipe.embeddings.cache import LruVectorCache
    from asyncpipe.embeddings.engine import EmbeddingEngine
    from asyncpipe.embeddings.limits import RequestGate
    from asyncpipe.embeddings.retry import RetryPolicy

    defaults = yaml.safe_load((REPO / "params.yaml").read_text())
    rpm = defaults["gemini"]["requests_per_minute"]
    concurrent = defaults["concurrency"]["max_concurrent_requests"]
    batch = defaults["concurrency"]["batch_size"]
    provider = GeminiProvider(Gemini(base_url=url, embedding_dimension=dimension), API_KEY)
    texts = [f"sustained {dimension} {index}" for index in range(SUSTAINED_TEXTS)]
    # Warm the server's answer cache, as for the runs, outside the measurement.
    for start in range(0, len(texts), batch):
        await provider.embed(texts[start : start + batch])
    engine = EmbeddingEngine(
        provider,
        RequestGate(concurrent, rpm),
        RetryPolicy(max_retries=3, base_delay=1.0),
        batch_size=batch,
        memory=LruVectorCache(0),
    )
    themes = [texts[start : start + 50] for start in range(0, len(texts), 50)]
    queue = iter(themes)
    started = time.perf_counter()
    async with engine:

        async def worker() -> None:
            for theme in queue:
                await engine.embed(theme)

        async with asyncio.TaskGroup() as group:
            for _ in range(4 * concurrent):
                group.create_task(worker())
    seconds = time.perf_counter() - started
    await provider.aclose()
    requests = engine.statistics().requests
    bound = min(rpm / 60, concurrent / latency) * batch
    return {
        "texts": len(texts),
        "requests": requests,
        "seconds": round(seconds, 2),
        "texts_per_second": round(len(texts) / seconds, 1),
        "ratio_to_text_bound": round(len(texts) / seconds / bound, 3),
    }


async def _naive(
    url: str, dimension: int, candidates: dict[str, Any], latency: float
) -> dict[str, float]:
    """One theme per request, one request at a time, no cache: the older pipeline's shape."""
    settings = Gemini(base_url=url, embedding_dimension=dimension, transport="sdk")
    provider = GeminiProvider(settings, API_KEY)
    themes = list(candidates["candidates"].items())[:NAIVE_THEMES]
    texts = 0
    started = time.perf_counter()
    try:
        for theme, entry in themes:
            batch = [f"naive {theme}", *entry["words"]]
            await provider.embed(batch)
            texts += len(batch)
    finally:
        await provider.aclose()
    seconds = time.perf_counter() - started
    return {
        "themes": len(themes),
        "texts_per_second": round(texts / seconds, 1),
        "requests_per_second": round(len(themes) / seconds, 2),
    }


def _print(dimension: int, figures: dict[str, Any]) -> None:
    cold = figures["cold_run"]
    print(
        f"cold run: {cold['wall_seconds']} s wall, {cold['embedding_seconds']} s embedding, "
        f"peak RSS {cold['peak_rss_mb']} MB\n"
        f"  {cold['requests']} requests, {cold['texts_sent']} texts "
        f"({cold['requests_per_puzzle']} requests, {cold['texts_per_puzzle']} texts per puzzle)\n"
        f"  {cold['texts_per_second']} texts/s, {cold['requests_per_second']} requests/s; "
        f"bound {cold['text_bound_per_second']} texts/s ({cold['request_bound_per_second']} req/s "
        f"x 100): ratio {cold['ratio_to_text_bound']} "
        f"({cold['ratio_to_request_bound_at_actual_batch']} at the actual batch size, "
        f"{cold['ratio_to_bound_at_measured_p50']} at the measured p50 latency)\n"
        f"  latency p50 {cold['latency_p50']} s, p95 {cold['latency_p95']} s\n"
        f"  event-loop lag p50 {cold['loop_lag_p50_ms']} ms, p99 {cold['loop_lag_p99_ms']} ms "
        f"(requests in flight, scoring in {cold['scoring_workers']} worker processes: "
        f"{cold['scoring_seconds']} s for the batch)"
    )
    _print_solver(dimension, figures["solver_ms_per_puzzle"])
    sustained = figures["sustained"]
    print(
        f"sustained stream ({sustained['texts']} texts, {sustained['requests']} requests): "
        f"{sustained['texts_per_second']} texts/s, ratio {sustained['ratio_to_text_bound']} "
        "to the bound"
    )
    warm = figures["warm_rerun"]
    print(f"warm rerun: {warm['requests']} requests, {warm['wall_seconds']} s wall")
    print(f"decode CPU per vector (ms): {figures['decode_cpu_ms_per_vector']}")
    naive = figures["naive"]
    print(
        f"naive (one theme per request, one at a time): {naive['texts_per_second']} texts/s; "
        f"asyncpipe is {figures['speedup_vs_naive_texts_per_second']}x faster"
    )


class _Server:
    """tests.gemini_server in its own process, so its CPU is not counted as ours."""

    def __init__(self, latency: float) -> None:
        self._latency = latency
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> _Server:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.gemini_server",
                "--port",
                "0",
                "--any-key",
                "--latency",
                str(self._latency),
                "--no-record-texts",
                "--lifetime",
                "3600",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        stdout = self._process.stdout
        self.url = stdout.readline().strip() if stdout is not None else ""
        if not self.url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the test server did not start: {self.url!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
