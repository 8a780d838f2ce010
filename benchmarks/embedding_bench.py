"""Benchmark of the Gemini embedding path against the local test server (`make bench`).

Everything is measured in one run and reported as ratios, because this machine
is noisy. Each section starts `tests.gemini_server` as a separate process (so
the server's CPU is not ours) and runs `python -m asyncpipe run` in subprocesses,
sampling the resident memory of the run's whole process tree (the run and its
scoring workers, `benchmarks.process_tree`) every 20 ms. The sections:

- runs (300 ms latency), for 3072 and 768 dimensions: a whole run of 80 puzzles
  (320 themes, ~50 candidates each) from a cold cache: texts/s and requests/s
  against the bound min(RPM/60, max_concurrent/latency) x texts per request,
  requests and texts sent per puzzle, wall time, event-loop lag, peak RSS of the
  tree and of the main process; a warm rerun (requests sent, should be 0; wall
  time, and its ratio to the cold run's); CPU time per decoded vector for both
  transports (rest: httpx + msgspec; sdk: google-genai); the engine alone on a long
  stream; the naive way (one theme per request, one at a time, no cache) over a
  sample of themes; the solver on one core (below).
- older: the older pipeline's own batch (tests/fixtures/reference/params.yaml: 3072
  dimensions, 6 requests in flight, 2,900 RPM, 0.1 s between requests, 80 puzzles
  of its wiki categories, neighbour candidates, in GloVe since its 1 GB index is not
  here) at 0.3 s +- 0.1 latency, cold and warm, against its measured 194 s and
  2,582 MB.
- scale: 2,000 puzzles (`--scale-puzzles`) at 768 dimensions and 20 ms latency,
  from a generated source of real nouns (`benchmarks.scale_themes`), against an
  80-puzzle run from the same source on the same server: peak tree RSS ratio and
  seconds per 1,000 puzzles.
- solver: ms per puzzle on one core (median, p90) for `score_puzzle`, for the solver
  alone (`best_splits`, by halves) and for the table of every split it used to sum,
  as a ratio, on seeded random puzzles. `--only solver` measures this alone, with
  no server and no run, in seconds.

The default is runs and older; `--only SECTION` runs one (`make bench ARGS="--only
scale"`). Only 127.0.0.1 is contacted. Results go to stdout and to
reports/benchmark.json, one key per section (`--only` replaces its own section and
keeps the others); `--only solver` writes reports/solver_benchmark.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asyncpipe.embeddings.providers.gemini import GeminiProvider  # noqa: E402
from asyncpipe.settings.sections import Gemini  # noqa: E402
from benchmarks.process_tree import TreeMemorySampler  # noqa: E402
from benchmarks.scale_themes import write_theme_source  # noqa: E402

API_KEY = "bench-key"
LATENCY = 0.3
PUZZLES = 80
NAIVE_THEMES = 24
#: Random puzzles the solver section times, each way.
SOLVER_PUZZLES = 40
#: A warm rerun should cost at most this share of the cold run's wall time.
WARM_TARGET = 0.15

#: The older pipeline's inputs, verbatim (tests/fixtures/reference/README.md).
REFERENCE = REPO / "tests" / "fixtures" / "reference"
#: 0.3 s +- 0.1: the server waits latency + uniform(0, jitter).
OLDER_LATENCY = 0.2
OLDER_JITTER = 0.2
#: The older pipeline's own figures for its 80-puzzle batch, and what we aim for.
OLDER_WALL_SECONDS = 194.0
OLDER_PEAK_MB = 2582.0
OLDER_SPEED_TARGET = 20.0
OLDER_MEMORY_TARGET = 8.0

SCALE_PUZZLES = 2000
SCALE_LATENCY = 0.02
SCALE_DIMENSION = 768
#: Peak tree RSS at scale over the 80-puzzle run's: memory should not grow with the batch.
SCALE_MEMORY_TARGET = 1.3

SECTIONS = ("runs", "older", "scale", "solver")
DEFAULT_SECTIONS = ("runs", "older")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, help="one section (default: runs and older)")
    parser.add_argument(
        "--puzzles",
        type=int,
        help=f"puzzles per run of the runs and older sections, and of scale's reference "
        f"run (default {PUZZLES}; fewer while developing)",
    )
    parser.add_argument("--latency", type=float, default=LATENCY, help="of the runs section")
    parser.add_argument(
        "--dimensions", type=int, nargs="+", help="default: 3072 768 (--only solver: 50 3072)"
    )
    parser.add_argument("--scale-puzzles", type=int, default=SCALE_PUZZLES)
    parser.add_argument("--scale-latency", type=float, default=SCALE_LATENCY)
    parser.add_argument("--output", type=Path, help="default: reports/benchmark.json")
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
    output = arguments.output or REPO / "reports" / "benchmark.json"
    sections = (arguments.only,) if arguments.only else DEFAULT_SECTIONS
    # --only replaces its own section of the file and keeps the others' last figures.
    results = _previous(output) if arguments.only else {}
    if "runs" in sections:
        results["runs"] = _runs_section(arguments)
    if "older" in sections:
        results["older_pipeline"] = _older_section(arguments)
    if "scale" in sections:
        results["scale"] = _scale_section(arguments)
    _write(output, results)
    return 0


def _previous(output: Path) -> dict[str, Any]:
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


def _write(output: Path, results: dict[str, Any]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {output}")


# --- the sections ---------------------------------------------------------------------


def _runs_section(arguments: argparse.Namespace) -> dict[str, Any]:
    puzzles = arguments.puzzles or PUZZLES
    section: dict[str, Any] = {"latency_seconds": arguments.latency, "puzzles": puzzles}
    with _Server(arguments.latency) as server:
        for dimension in arguments.dimensions:
            print(f"\n== runs: {dimension} dimensions, {puzzles} puzzles ==", flush=True)
            section[str(dimension)] = _measure(server.url, dimension, puzzles, arguments)
    return section


def _measure(
    url: str, dimension: int, puzzles: int, arguments: argparse.Namespace
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with _folders() as folder:
        params = _params(url, dimension)
        cold, warm = _cold_and_warm(folder, params, puzzles)
        themes = json.loads((folder / "measured" / CANDIDATES).read_text())
    figures["cold_run"] = _run_figures(cold, params, puzzles, arguments.latency)
    figures["warm_rerun"] = _warm_figures(warm, cold)
    figures["decode_cpu_ms_per_vector"] = asyncio.run(_decode_cost(url, dimension))
    figures["solver_ms_per_puzzle"] = _solver_time(dimension, arguments.solver_puzzles)
    naive = asyncio.run(_naive(url, dimension, themes, arguments.latency))
    figures["naive"] = naive
    figures["sustained"] = asyncio.run(_sustained(url, dimension, arguments.latency))
    figures["speedup_vs_naive_texts_per_second"] = round(
        figures["cold_run"]["texts_per_second"] / naive["texts_per_second"], 1
    )
    _print(dimension, figures)
    return figures


def _older_section(arguments: argparse.Namespace) -> dict[str, Any]:
    params = yaml.safe_load((REFERENCE / "params.yaml").read_text())
    puzzles = arguments.puzzles or params["puzzle_generation"]["total_puzzle_count"]
    latency = round(OLDER_LATENCY + OLDER_JITTER / 2, 3)
    print(
        f"\n== older pipeline's batch: {puzzles} puzzles, {latency} s +- "
        f"{OLDER_JITTER / 2} latency ==",
        flush=True,
    )
    with _Server(OLDER_LATENCY, OLDER_JITTER) as server, _folders() as folder:
        params["gemini"]["base_url"] = server.url
        # Its 1 GB index is not here: the neighbour search runs in GloVe instead.
        params["vector_search"]["data_source"] = "glove"
        params["candidates"] = {"source": "neighbours"}
        params["logging"]["level"] = "WARNING"
        params["themes"]["source"] = "wiki_categories_filtered"
        for name in ("warm-up", "measured"):
            (folder / name).mkdir()
            shutil.copyfile(
                REFERENCE / "wiki_categories_filtered", folder / name / "wiki_categories_filtered"
            )
        cold, warm = _cold_and_warm(folder, params, puzzles)
    figures: dict[str, Any] = {
        "settings": {
            "dimension": params["gemini"]["embedding_dimension"],
            "max_concurrent_requests": params["multiprocessing"]["max_concurrent_requests"],
            "requests_per_minute": params["gemini"]["requests_per_minute"],
            "min_request_interval": params["gemini"]["min_request_interval"],
            "latency_seconds": f"{latency} +- {OLDER_JITTER / 2}",
            "candidates": "neighbours, in GloVe 6B 50d",
            "embedding_table_format": params["output"].get("embedding_table_format", "csv"),
        },
        "cold_run": _run_figures(cold, params, puzzles, latency),
        "warm_rerun": _warm_figures(warm, cold),
    }
    cold_figures = figures["cold_run"]
    figures["against_the_older_pipeline"] = {
        "older_wall_seconds": OLDER_WALL_SECONDS,
        "older_peak_rss_mb": OLDER_PEAK_MB,
        "times_faster": round(OLDER_WALL_SECONDS / cold_figures["wall_seconds"], 1),
        "times_faster_target": OLDER_SPEED_TARGET,
        "times_less_memory": round(OLDER_PEAK_MB / cold_figures["peak_tree_rss_mb"], 1),
        "times_less_memory_target": OLDER_MEMORY_TARGET,
    }
    _print_older(figures, puzzles)
    return figures


def _scale_section(arguments: argparse.Namespace) -> dict[str, Any]:
    puzzles = arguments.scale_puzzles
    reference_puzzles = arguments.puzzles or PUZZLES
    latency = arguments.scale_latency
    print(
        f"\n== scale: {puzzles} puzzles at {SCALE_DIMENSION} dimensions, {latency} s "
        f"latency, against {reference_puzzles} from the same source ==",
        flush=True,
    )
    with _Server(latency) as server, _folders() as folder:
        params = _params(server.url, SCALE_DIMENSION)
        generation = params["puzzle_generation"]
        needed = puzzles * generation["themes_per_puzzle"]
        spares = max(
            generation["themes_per_puzzle"], round(needed * generation["spare_theme_fraction"])
        )
        source = folder / "scale_themes.txt"
        started = time.perf_counter()
        themes = write_theme_source(source, needed + spares, params["themes"]["exclude_categories"])
        print(
            f"theme source: {len(themes)} nouns ({themes[0]}, {themes[1]}, ... {themes[-1]}) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        params["themes"]["source"] = str(source)
        # No warm-up run here (it would double the section): at 768 dimensions the
        # server's first encoding of a vector costs it ~0.1 ms, on our two cores.
        runs = {}
        for name, count in (("reference", reference_puzzles), ("scale", puzzles)):
            workdir = folder / name
            workdir.mkdir()
            _write_params(workdir, params)
            runs[name] = _run_figures(_run_cli(workdir, count), params, count, latency)
            print(
                f"{name}: {runs[name]['puzzles_generated']} of {count} puzzles, "
                f"{runs[name]['wall_seconds']} s wall, peak tree RSS "
                f"{runs[name]['peak_tree_rss_mb']} MB",
                flush=True,
            )
    reference, scale = runs["reference"], runs["scale"]
    extra = scale["puzzles_generated"] - reference["puzzles_generated"]
    figures: dict[str, Any] = {
        "latency_seconds": latency,
        "dimension": SCALE_DIMENSION,
        "themes_in_source": len(themes),
        "reference_run": reference,
        "scale_run": scale,
        "peak_tree_rss_ratio": round(scale["peak_tree_rss_mb"] / reference["peak_tree_rss_mb"], 2),
        "peak_tree_rss_ratio_target": SCALE_MEMORY_TARGET,
        "seconds_per_1000_puzzles": round(
            scale["wall_seconds"] / max(scale["puzzles_generated"], 1) * 1000, 1
        ),
        # Start-up and the index load paid once: what each further 1,000 puzzles cost.
        "marginal_seconds_per_1000_puzzles": (
            round((scale["wall_seconds"] - reference["wall_seconds"]) / extra * 1000, 1)
            if extra > 0
            else None
        ),
        "by_hand": 'make bench ARGS="--only scale --scale-puzzles 10000"',
    }
    _print_scale(figures)
    return figures


# --- runs of the command line -----------------------------------------------------------

CANDIDATES = Path("data/candidates/candidate_words.json")
HISTORY = Path("data/history/published.jsonl")


@contextmanager
def _folders() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="asyncpipe-bench-") as folder:
        yield Path(folder)


def _cold_and_warm(
    folder: Path, params: dict[str, Any], puzzles: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A throwaway run, then a cold run and a warm rerun of the same batch in a fresh
    workdir (subfolders "warm-up" and "measured" of `folder`)."""
    # The test server encodes a vector the first time it serves it (~0.3 ms of its CPU
    # per 3072 values, on the cores we measure on): the throwaway run warms its cache,
    # so the measured run sees the configured latency, as it would from the real API.
    scratch = folder / "warm-up"
    scratch.mkdir(exist_ok=True)
    _write_params(scratch, params)
    _run_cli(scratch, puzzles)
    workdir = folder / "measured"
    workdir.mkdir(exist_ok=True)
    _write_params(workdir, params)
    cold = _run_cli(workdir, puzzles)
    # The same batch again, so with the history the cold run started from.
    (workdir / HISTORY).unlink(missing_ok=True)
    warm = _run_cli(workdir, puzzles)
    return cold, warm


def _params(url: str, dimension: int) -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gemini"].update(base_url=url, embedding_dimension=dimension, transport="rest")
    params["output"]["embedding_table_format"] = "parquet"
    params["logging"]["level"] = "WARNING"
    return params


def _write_params(workdir: Path, params: dict[str, Any]) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def _run_cli(workdir: Path, puzzles: int) -> dict[str, Any]:
    """`asyncpipe run` in `workdir`, its wall time and the peak memory of its tree."""
    environment = dict(os.environ, GEMINI_API_KEY=API_KEY)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncpipe", "run", "--count", str(puzzles), "--provider", "gemini"],
        cwd=workdir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with TreeMemorySampler(process.pid) as memory:
        # stderr is read after the exit: at WARNING level the run writes little to it.
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"asyncpipe run exited {process.returncode}:\n{stderr}")
    metadata = json.loads((workdir / "data/outputs/puzzle_metadata.json").read_text())
    return {
        "wall": wall,
        "peak_tree_kb": memory.peak_tree_kb,
        "peak_main_kb": memory.peak_main_kb,
        # ru_maxrss: the largest single process of the tree, what was reported before.
        "largest_process_kb": usage.ru_maxrss,
        "processes": memory.peak_processes,
        "metadata": metadata,
    }


def _request_bound(params: dict[str, Any], latency: float) -> float:
    """Requests per second the schedule allows: min(RPM/60, in flight/latency, 1/interval)."""
    settings = params["gemini"]
    in_flight = _in_flight(params)
    bounds = [settings["requests_per_minute"] / 60, in_flight / latency]
    if settings.get("min_request_interval"):
        bounds.append(1 / settings["min_request_interval"])
    return min(bounds)


def _in_flight(params: dict[str, Any]) -> int:
    # The older params.yaml names it under multiprocessing; asyncpipe carries it over.
    concurrency = params.get("concurrency") or {}
    legacy = params.get("multiprocessing") or {}
    return int(
        concurrency.get("max_concurrent_requests") or legacy.get("max_concurrent_requests") or 8
    )


def _run_figures(
    run: dict[str, Any], params: dict[str, Any], puzzles: int, latency: float
) -> dict[str, Any]:
    statistics = run["metadata"]["run_statistics"]
    batch_size = (params.get("concurrency") or {}).get("batch_size", 100)
    seconds = statistics["embedding_seconds"]
    requests = statistics["requests"]
    texts = statistics["texts_requested"]
    texts_per_request = texts / requests if requests else 0.0
    request_bound = _request_bound(params, latency)
    text_bound = request_bound * batch_size
    # The same bound with the latency the client actually saw (the server's plus
    # transfer and the client's own queueing): what the schedule can reach.
    measured_bound = _request_bound(params, statistics["latency_p50_seconds"] or latency)
    return {
        "puzzles_generated": run["metadata"]["counts"]["puzzles_generated"],
        "wall_seconds": round(run["wall"], 2),
        "embedding_seconds": seconds,
        "peak_tree_rss_mb": round(run["peak_tree_kb"] / 1024, 1),
        "peak_main_rss_mb": round(run["peak_main_kb"] / 1024, 1),
        "largest_process_rss_mb": round(run["largest_process_kb"] / 1024, 1),
        "processes": run["processes"],
        "requests": requests,
        "texts_sent": texts,
        "requests_per_puzzle": round(requests / puzzles, 2),
        "texts_per_puzzle": round(texts / puzzles, 1),
        "texts_per_second": round(texts / seconds, 1) if seconds else None,
        "requests_per_second": round(requests / seconds, 2) if seconds else None,
        "request_bound_per_second": round(request_bound, 2),
        "text_bound_per_second": round(text_bound, 1),
        "ratio_to_text_bound": round(texts / seconds / text_bound, 3) if seconds else None,
        "ratio_to_request_bound_at_actual_batch": (
            round(texts / seconds / (request_bound * texts_per_request), 3) if seconds else None
        ),
        "ratio_to_bound_at_measured_p50": (
            round(texts / seconds / (measured_bound * texts_per_request), 3) if seconds else None
        ),
        "latency_p50": statistics["latency_p50_seconds"],
        "latency_p95": statistics["latency_p95_seconds"],
        "limiter_wait_seconds": statistics["limiter_wait_seconds"],
        "loop_lag_p50_ms": statistics.get("loop_lag_p50_ms"),
        "loop_lag_p99_ms": statistics.get("loop_lag_p99_ms"),
        "scoring_seconds": statistics["scoring_seconds"],
        "scoring_workers": statistics["scoring_workers"],
        "timing_seconds": run["metadata"].get("timing_seconds"),
    }


def _warm_figures(warm: dict[str, Any], cold: dict[str, Any]) -> dict[str, Any]:
    statistics = warm["metadata"]["run_statistics"]
    return {
        "wall_seconds": round(warm["wall"], 2),
        "requests": statistics["requests"],
        "cache_hits_disk": statistics["cache_hits_disk"],
        "peak_tree_rss_mb": round(warm["peak_tree_kb"] / 1024, 1),
        "loop_lag_p50_ms": statistics.get("loop_lag_p50_ms"),
        "loop_lag_p99_ms": statistics.get("loop_lag_p99_ms"),
        "warm_to_cold_wall": round(warm["wall"] / cold["wall"], 3),
        "warm_to_cold_wall_target": WARM_TARGET,
        "timing_seconds": warm["metadata"].get("timing_seconds"),
    }


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
    # Warm the server's answer cache, as for the runs, outside the measurement: as many
    # requests at once as the engine will send, so the warm-up takes seconds, not minutes.
    slots = asyncio.Semaphore(concurrent)

    async def warm(start: int) -> None:
        async with slots:
            await provider.embed(texts[start : start + batch])

    await asyncio.gather(*(warm(start) for start in range(0, len(texts), batch)))
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


# --- printing -----------------------------------------------------------------------------


def _print_run(name: str, run: dict[str, Any]) -> None:
    print(
        f"{name}: {run['wall_seconds']} s wall, {run['embedding_seconds']} s embedding, "
        f"{run['puzzles_generated']} puzzles\n"
        f"  peak RSS: whole tree {run['peak_tree_rss_mb']} MB ({run['processes']} processes), "
        f"main process {run['peak_main_rss_mb']} MB, largest single process (ru_maxrss) "
        f"{run['largest_process_rss_mb']} MB\n"
        f"  {run['requests']} requests, {run['texts_sent']} texts "
        f"({run['requests_per_puzzle']} requests, {run['texts_per_puzzle']} texts per puzzle)\n"
        f"  {run['texts_per_second']} texts/s, {run['requests_per_second']} requests/s; "
        f"bound {run['text_bound_per_second']} texts/s ({run['request_bound_per_second']} req/s "
        f"x 100): ratio {run['ratio_to_text_bound']} "
        f"({run['ratio_to_request_bound_at_actual_batch']} at the actual batch size, "
        f"{run['ratio_to_bound_at_measured_p50']} at the measured p50 latency)\n"
        f"  latency p50 {run['latency_p50']} s, p95 {run['latency_p95']} s; "
        f"event-loop lag p50 {run['loop_lag_p50_ms']} ms, p99 {run['loop_lag_p99_ms']} ms; "
        f"scoring in {run['scoring_workers']} worker processes: {run['scoring_seconds']} s"
    )


def _print_warm(warm: dict[str, Any]) -> None:
    print(
        f"warm rerun: {warm['requests']} requests, {warm['wall_seconds']} s wall, "
        f"{warm['warm_to_cold_wall']} of the cold run's (target <= "
        f"{warm['warm_to_cold_wall_target']}); peak tree RSS {warm['peak_tree_rss_mb']} MB; "
        f"loop lag p50 {warm['loop_lag_p50_ms']} ms, p99 {warm['loop_lag_p99_ms']} ms"
    )


def _print(dimension: int, figures: dict[str, Any]) -> None:
    _print_run("cold run", figures["cold_run"])
    _print_warm(figures["warm_rerun"])
    _print_solver(dimension, figures["solver_ms_per_puzzle"])
    sustained = figures["sustained"]
    print(
        f"sustained stream ({sustained['texts']} texts, {sustained['requests']} requests): "
        f"{sustained['texts_per_second']} texts/s, ratio {sustained['ratio_to_text_bound']} "
        "to the bound"
    )
    print(f"decode CPU per vector (ms): {figures['decode_cpu_ms_per_vector']}")
    naive = figures["naive"]
    print(
        f"naive (one theme per request, one at a time): {naive['texts_per_second']} texts/s; "
        f"asyncpipe is {figures['speedup_vs_naive_texts_per_second']}x faster"
    )


def _print_older(figures: dict[str, Any], puzzles: int) -> None:
    _print_run("cold run", figures["cold_run"])
    _print_warm(figures["warm_rerun"])
    against = figures["against_the_older_pipeline"]
    note = "" if puzzles == PUZZLES else f" (but this run made {puzzles} puzzles, not 80)"
    print(
        f"against the older pipeline's {OLDER_WALL_SECONDS:.0f} s and {OLDER_PEAK_MB:.0f} MB"
        f"{note}: {against['times_faster']}x faster (target {OLDER_SPEED_TARGET:.0f}x), "
        f"{against['times_less_memory']}x less memory (target {OLDER_MEMORY_TARGET:.0f}x)"
    )


def _print_scale(figures: dict[str, Any]) -> None:
    _print_run("reference run", figures["reference_run"])
    _print_run("scale run", figures["scale_run"])
    print(
        f"peak tree RSS at scale / reference: {figures['peak_tree_rss_ratio']} (target <= "
        f"{SCALE_MEMORY_TARGET}); {figures['seconds_per_1000_puzzles']} s per 1,000 puzzles "
        f"({figures['marginal_seconds_per_1000_puzzles']} s for each further 1,000)\n"
        f"the README's 10,000-puzzle figure, by hand: {figures['by_hand']}"
    )


class _Server:
    """tests.gemini_server in its own process, so its CPU is not counted as ours."""

    def __init__(self, latency: float, jitter: float = 0.0) -> None:
        self._latency = latency
        self._jitter = jitter
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
                "--latency-jitter",
                str(self._jitter),
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
