"""The figures of one run, gathered from the components that counted them.

Each component keeps its own counters and reports them as a frozen value from
`statistics()` (the engine with its cache, store and gate; the scoring pool; the
loop-lag monitor). `RunStatistics` holds those values side by side, with the few
figures only the run itself knows, so each counter lives in one place. The log's
summary line and `run_statistics` in `puzzle_metadata.json` read its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncpipe.embeddings.engine import EngineStatistics
from asyncpipe.run.loop_lag import LoopLagStatistics
from asyncpipe.run.scoring_pool import PoolStatistics


@dataclass(frozen=True)
class RunStatistics:
    """What one run of stage 3 did, in figures."""

    #: Themes whose texts were all embedded (in this run or, when resumed, before it).
    themes_embedded: int
    #: Themes given up while embedding (unembeddable text, the API failing).
    themes_failed_embedding: int
    #: Wall time of the embedding rounds.
    embedding_seconds: float
    #: Wall time spent waiting for puzzles to be scored.
    scoring_seconds: float
    #: Puzzles that gave up a theme to be rebuilt, over all rounds.
    puzzles_rebuilt: int
    #: Themes a resumed run found finished in the checkpoint (0 on a fresh run).
    themes_resumed: int
    #: Puzzle scores a resumed run found in the checkpoint.
    puzzle_scores_resumed: int
    engine: EngineStatistics
    pool: PoolStatistics
    loop_lag: LoopLagStatistics

    def to_json(self) -> dict[str, Any]:
        """`run_statistics` of the metadata: flat keys, absent figures left out."""
        return {
            "themes_embedded": self.themes_embedded,
            "themes_failed_embedding": self.themes_failed_embedding,
            "embedding_seconds": round(self.embedding_seconds, 3),
            **self.engine.to_json(),
            "scoring_workers": self.pool.workers,
            "puzzles_scored": self.pool.puzzles_scored,
            "scoring_pool_busy_seconds": self.pool.busy_seconds,
            "puzzle_scores_resumed": self.puzzle_scores_resumed,
            "themes_resumed": self.themes_resumed,
            "scoring_seconds": round(self.scoring_seconds, 3),
            "puzzles_rebuilt": self.puzzles_rebuilt,
            **self.loop_lag.to_json(),
        }

    def summary_line(self) -> str:
        """The one line the log ends the embedding with; absent figures are not printed."""
        engine = self.engine
        disk = engine.store.hits if engine.store is not None else 0
        parts = [
            f"{engine.requests} requests",
            f"{engine.texts_requested} texts sent",
            f"cache hits {engine.cache.hits} memory / {disk} disk",
            f"{engine.in_flight_hits} in-flight duplicates",
            f"{engine.retries} retries",
            f"{engine.gate.throttled} throttled (429)",
        ]
        if engine.latency is not None:
            parts.append(
                f"latency p50 {engine.latency.p50_seconds} s / p95 {engine.latency.p95_seconds} s"
            )
        else:
            parts.append("no request answered")
        parts.append(f"{engine.gate.limiter_wait_seconds:.2f} s waiting on the rate limiter")
        parts.append(f"{self.embedding_seconds:.2f} s wall")
        if self.loop_lag.p99_ms is not None:
            parts.append(f"event-loop lag p99 {self.loop_lag.p99_ms} ms")
        return "Embedding summary: " + ", ".join(parts)
