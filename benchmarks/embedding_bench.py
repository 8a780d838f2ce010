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
  sample of themes, as a throughput ratio.

Only 127.0.0.1 is contacted. Results go to stdout and to reports/benchmark.json.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=PUZZLES)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument("--dimensions", type=int, nargs="+", default=[3072, 768])
    parser.add_argument("--output", type=Path, default=REPO / "reports" / "benchmark.json")
    arguments = parser.parse_args()

    results: dict[str, Any] = {"latency_seconds": arguments.latency, "runs": {}}
    with _Server(arguments.latency) as server:
        for dimension in arguments.dimensions:
            print(f"\n== {dimension} dimensions ==", flush=True)
            results["runs"][str(dimension)] = _measure(server.url, dimension, arguments)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {arguments.output}")
    return 0


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
    figures["solver_ms_per_puzzle"] = _solver_time(dimension)
    naive = asyncio.run(_naive(url, dimension, themes, arguments.latency))
    figures["naive"] = naive
    figures["sustained"] = asyncio.run(_sustained(url, dimension, arguments.latency))
    figures["speedup_vs_naive_texts_per_second"] = round(
        (texts / seconds) / naive["texts_per_second"], 1
    )
    _print(dimension, figures)
    return figures


def _solver_time(dimension: int) -> dict[str, float]:
    """score_puzzle on one core, in this process: the table build, then per puzzle."""
    from asyncpipe.puzzle.scoring import score_puzzle
    from asyncpipe.puzzle.solver import split_table

    started = time.perf_counter()
    split_table(4, 4)
    build = time.perf_counter() - started
    generator = np.random.default_rng(0)
    times = []
    for _ in range(10):
        vectors = generator.normal(size=(16, dimension)).astype(np.float32)
        themes = generator.normal(size=(4, dimension)).astype(np.float32)
        started = time.perf_counter()
        score_puzzle(vectors, themes, [f"w{i}" for i in range(16)])
        times.append(time.perf_counter() - started)
    return {
        "table_build_ms": round(build * 1000, 1),
        "median_ms": round(float(np.median(times)) * 1000, 1),
    }


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
    print(f"solver per puzzle, one core: {figures['solver_ms_per_puzzle']}")
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
