"""RunStatistics: the log line and the metadata read the components' figures, once each."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from asyncpipe.embeddings.cache import CacheStatistics
from asyncpipe.embeddings.engine import EngineStatistics, RequestLatency
from asyncpipe.embeddings.limits import GateStatistics
from asyncpipe.embeddings.store import StoreStatistics
from asyncpipe.run.loop_lag import LoopLagStatistics
from asyncpipe.run.scoring_pool import PoolStatistics
from asyncpipe.run.statistics import RunStatistics

ANSWERED = RequestLatency(0.31, 0.62)
SAMPLED = LoopLagStatistics(samples=40, p50_ms=0.4, p99_ms=12.5, max_ms=30.0)


def run_figures(
    latency: RequestLatency | None = ANSWERED, lag: LoopLagStatistics = SAMPLED
) -> RunStatistics:
    engine = EngineStatistics(
        requests=7,
        texts_requested=650,
        texts_asked=900,
        texts_prefetched=0,
        in_flight_hits=120,
        retries=2,
        failed_requests=0,
        latency=latency,
        cache=CacheStatistics(
            hits=130, misses=770, evictions=0, size=650, size_bytes=2600, capacity_bytes=4000
        ),
        store=StoreStatistics(Path("/s.sqlite3"), hits=5, misses=765, written=650, corrupt_rows=1),
        gate=GateStatistics(
            requests_started=7,
            in_flight=0,
            max_in_flight=4,
            slot_wait_seconds=0.5,
            limiter_wait_seconds=1.25,
            throttled=1,
            pause_seconds=2.0,
        ),
    )
    return RunStatistics(
        themes_embedded=16,
        themes_failed_embedding=1,
        embedding_seconds=3.2104,
        scoring_seconds=0.9,
        puzzles_rebuilt=0,
        themes_resumed=0,
        puzzle_scores_resumed=0,
        engine=engine,
        pool=PoolStatistics(workers=2, puzzles_scored=4, busy_seconds=0.85),
        loop_lag=lag,
    )


def test_the_summary_line_reads_each_figure_from_the_component_that_counted_it() -> None:
    line = run_figures().summary_line()
    assert line == (
        "Embedding summary: 7 requests, 650 texts sent, cache hits 130 memory / 5 disk, "
        "120 in-flight duplicates, 2 retries, 1 throttled (429), latency p50 0.31 s / p95 0.62 s, "
        "1.25 s waiting on the rate limiter, 3.21 s wall, event-loop lag p99 12.5 ms"
    )


def test_figures_that_do_not_exist_are_neither_printed_nor_written() -> None:
    figures = run_figures(latency=None, lag=LoopLagStatistics(samples=0))
    line = figures.summary_line()
    assert "None" not in line
    assert "no request answered" in line and "event-loop lag" not in line
    document = figures.to_json()
    assert None not in document.values()
    assert "latency_p50_seconds" not in document and "loop_lag_p99_ms" not in document


def test_the_metadata_holds_each_counter_once_under_its_usual_name() -> None:
    document = run_figures().to_json()
    assert document["cache_hits_memory"] == 130 and document["cache_hits_disk"] == 5
    assert document["throttled_429"] == 1
    assert document["limiter_wait_seconds"] == 1.25
    assert document["scoring_pool_busy_seconds"] == 0.85
    assert document["store_corrupt_rows"] == 1
    assert document["embedding_seconds"] == 3.21
    without_store = replace(run_figures(), engine=replace(run_figures().engine, store=None))
    assert without_store.to_json()["cache_hits_disk"] == 0
    assert "store_path" not in without_store.to_json()
