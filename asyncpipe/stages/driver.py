"""Stage 3's asynchronous core: embed the themes, assemble and score the puzzles.

`make_puzzles` runs inside one event loop: the embedding engine, the scoring
pool, the progress reporter and the loop-lag monitor are opened together and
closed together. It works in rounds (spare themes for failed ones, rebuilds of
puzzles below the quality bar), records each finished theme and scored puzzle
in the run's checkpoint, starts from what a resumed run recorded, and winds
down after a signal (`asyncpipe.run.interrupt`). `asyncpipe.run.pipeline` decides what
goes in and writes what comes out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.embeddings.providers.base import EmbeddingProvider
from asyncpipe.embeddings.session import open_engine
from asyncpipe.puzzle.assembly import AssemblyResult, Puzzle, assemble_puzzles
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.quality import below_bar, closer_elsewhere_in, puzzle_arrays
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.run.checkpoint import Checkpoint, Recorded
from asyncpipe.run.interrupt import Shutdown
from asyncpipe.run.loop_lag import LoopLagMonitor
from asyncpipe.run.progress import ProgressReporter
from asyncpipe.run.scoring_pool import ScoringPool
from asyncpipe.settings.sections import Params
from asyncpipe.stages.embed import EnhanceOutcome, embed_and_rank, theme_workers
from asyncpipe.stages.themes import ThemeSelection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What one run brings besides params and themes: where, what it recorded, its signals."""

    cache_dir: Path
    checkpoint: Checkpoint
    #: The interrupted run's records, when this run resumes it.
    recorded: Recorded | None
    shutdown: Shutdown
    #: The live progress bar: None shows it when stderr is a terminal.
    progress_bar: bool | None = None


@dataclass(repr=False)  # asyncio.run formats its result's repr on Python 3.11: keep it cheap
class MadePuzzles:
    #: The themes embedded, and those that failed embedding or were dropped by a rebuild.
    outcome: EnhanceOutcome
    assembly: AssemblyResult
    scores: list[PuzzleScore]
    below_bar: list[bool]
    statistics: dict[str, Any]
    #: A signal cut the work short; `assembly` holds only the completed (scored) puzzles.
    partial: bool
    #: Every theme given up in this stage: `outcome`'s failures, then the assembly's.
    failed_themes: Mapping[str, ThemeFailure]


async def make_puzzles(
    params: Params,
    selection: ThemeSelection,
    usable: dict[str, tuple[str, ...]],
    provider: EmbeddingProvider,
    run: RunContext,
) -> MadePuzzles:
    """Embed, assemble and score; embed spares only as far as failures require.

    Spares cost API calls with a paid provider, so they are embedded in rounds,
    each just large enough to cover the themes still missing. With
    `quality.on_low_quality: rebuild`, each poor puzzle gives up its weakest theme
    and the batch is assembled again. The assembly always sees themes in draw
    order, so the result depends on neither the rounds nor timing, nor on
    whether the run was resumed: a resumed run makes the same decisions, only
    with the recorded themes and scores already at hand.

    After a signal no new round starts; the puzzles assembled from the themes
    finished by then, and scored within the grace, are the partial result.
    """
    generation = params.puzzle_generation
    bar = params.quality
    shutdown, checkpoint, recorded = run.shutdown, run.checkpoint, run.recorded
    ordered = [theme for theme in selection.all_themes if theme in usable]
    primary = set(selection.themes)
    queue = [theme for theme in ordered if theme in primary]
    spares = [theme for theme in ordered if theme not in primary]
    mean_texts = 1 + sum(len(usable[theme]) for theme in ordered) / max(1, len(ordered))
    workers = theme_workers(
        params.concurrency.max_concurrent_requests, params.concurrency.batch_size, mean_texts
    )
    known_failures = recorded.failed_themes if recorded is not None else {}
    scored: dict[tuple[str, ...], PuzzleScore] = dict(recorded.scores) if recorded else {}
    outcome = EnhanceOutcome()
    rejected: set[str] = set()
    rebuilt = 0
    scoring_seconds = 0.0
    cut_short = False
    async with (
        # Opened first: the workers start while the themes are embedded.
        ScoringPool(
            params.concurrency.scoring_workers,
            generation.themes_per_puzzle,
            generation.words_per_theme,
        ) as pool,
        open_engine(provider, params, run.cache_dir) as engine,
        ProgressReporter(
            len(queue), params.logging.progress_interval, bar=run.progress_bar
        ) as progress,
        LoopLagMonitor() as lag,
        shutdown.watching(),
    ):
        embedding = _EmbeddingRound(engine, workers, progress, checkpoint)
        for round_number in range(bar.max_rebuild_rounds + 1):
            while True:
                if queue:
                    await embedding.run(queue, usable, known_failures, outcome, shutdown)
                    cut_short |= engine.stopped
                ranked = [
                    outcome.embedded[theme].ranked
                    for theme in ordered
                    if theme in outcome.embedded and theme not in rejected
                ]
                assembly = assemble_puzzles(
                    ranked,
                    generation.total_puzzle_count,
                    generation.themes_per_puzzle,
                    generation.words_per_theme,
                    closer_elsewhere=closer_elsewhere_in(outcome.embedded),
                )
                missing = generation.total_puzzle_count - len(assembly.puzzles)
                if missing == 0 or not spares:
                    break
                if shutdown.requested:
                    cut_short = True
                    break
                shortfall = missing * generation.themes_per_puzzle - len(assembly.unused_themes)
                take = max(shortfall, generation.themes_per_puzzle)
                queue, spares = spares[:take], spares[take:]
                progress.add_total(len(queue))
                log.info("Embedding %d spare themes to replace failed ones", len(queue))
            queue = []

            started = time.perf_counter()
            await _score(assembly.puzzles, scored, pool, outcome, checkpoint, shutdown)
            scoring_seconds += time.perf_counter() - started
            if any(tuple(puzzle.words) not in scored for puzzle in assembly.puzzles):
                cut_short = True
            if cut_short:
                break
            scores = [scored[tuple(puzzle.words)] for puzzle in assembly.puzzles]
            poor = [index for index, score in enumerate(scores) if below_bar(score, bar)]
            if (
                bar.on_low_quality != "rebuild"
                or not poor
                or round_number == bar.max_rebuild_rounds
            ):
                break
            if shutdown.requested:
                cut_short = True
                break
            for index in poor:
                puzzle, score = assembly.puzzles[index], scores[index]
                weakest = min(range(len(puzzle.groups)), key=lambda g: score.coherence[g])
                theme = puzzle.groups[weakest].theme
                rejected.add(theme)
                outcome.failed_themes[theme] = ThemeFailure(
                    FailureKind.DROPPED_BY_REBUILD,
                    f"dropped to rebuild a puzzle below the quality bar (difficulty "
                    f"{score.difficulty:.2f}{', ambiguous' if score.ambiguous else ''}); "
                    "it was that puzzle's least coherent group",
                )
            rebuilt += len(poor)
            log.info("Rebuilding %d puzzles below the quality bar", len(poor))

        if cut_short:
            completed = tuple(p for p in assembly.puzzles if tuple(p.words) in scored)
            assembly = dataclasses.replace(assembly, puzzles=completed)
        scores = [scored[tuple(puzzle.words)] for puzzle in assembly.puzzles]
        pool_statistics = pool.statistics()
        statistics = {
            "themes_embedded": len(outcome.embedded),
            "themes_failed_embedding": len(outcome.failed_themes),
            "embedding_seconds": round(outcome.seconds, 3),
            **engine.summary(),
            "scoring_workers": pool_statistics.workers,
            "puzzles_scored": pool_statistics.puzzles_scored,
            "puzzle_scores_resumed": len(recorded.scores) if recorded else 0,
            "themes_resumed": len(recorded.themes) if recorded else 0,
            "scoring_seconds": round(scoring_seconds, 3),
            "puzzles_rebuilt": rebuilt,
            **lag.summary(),
        }
    _log_statistics(statistics)
    flagged = [below_bar(score, bar) for score in scores]
    unusable = {
        theme: ThemeFailure(FailureKind.TOO_FEW_CANDIDATES, reason)
        for theme, reason in assembly.failed_themes.items()
    }
    failed_themes = {**outcome.failed_themes, **unusable}
    return MadePuzzles(outcome, assembly, scores, flagged, statistics, cut_short, failed_themes)


@dataclass
class _EmbeddingRound:
    """Rounds of themes through the engine, each wound down by a signal (`Shutdown.guard`)."""

    engine: EmbeddingEngine
    workers: int
    progress: ProgressReporter
    checkpoint: Checkpoint

    async def run(
        self,
        themes: list[str],
        usable: dict[str, tuple[str, ...]],
        known_failures: Mapping[str, ThemeFailure],
        outcome: EnhanceOutcome,
        shutdown: Shutdown,
    ) -> None:
        """Embed `themes` into `outcome`; those that failed for good before are not tried."""
        todo = [(theme, usable[theme]) for theme in themes if theme not in known_failures]
        for _ in range(len(themes) - len(todo)):
            self.progress.record(successful=False)
        work = asyncio.ensure_future(
            embed_and_rank(todo, self.engine, self.workers, self.progress, self.checkpoint)
        )
        await shutdown.guard(work, on_stop=self.engine.stop, on_deadline=self.engine.abandon)
        part = work.result()
        outcome.embedded.update(part.embedded)
        for theme in themes:  # in draw order, resumed or not
            failure = known_failures.get(theme) or part.failed_themes.get(theme)
            if failure is not None:
                outcome.failed_themes[theme] = failure
        outcome.seconds += part.seconds


async def _score(
    puzzles: Sequence[Puzzle],
    scored: dict[tuple[str, ...], PuzzleScore],
    pool: ScoringPool,
    outcome: EnhanceOutcome,
    checkpoint: Checkpoint,
    shutdown: Shutdown,
) -> None:
    """Score the puzzles not scored yet into `scored`, each recorded in the checkpoint.

    After a signal the scoring goes on for the grace left, then what has not
    finished is cancelled: those puzzles are not completed.
    """

    async def score_one(puzzle: Puzzle) -> None:
        score = await pool.score(puzzle.words, *puzzle_arrays(puzzle, outcome.embedded))
        scored[tuple(puzzle.words)] = score
        await checkpoint.puzzle_scored(puzzle.words, score)

    async def score_all() -> None:
        async with asyncio.TaskGroup() as group:
            for puzzle in puzzles:
                if tuple(puzzle.words) not in scored:
                    group.create_task(score_one(puzzle))

    work = asyncio.ensure_future(score_all())
    await shutdown.guard(work)
    if not work.cancelled():
        work.result()  # an error in scoring is a bug: let it show


def _log_statistics(statistics: dict[str, Any]) -> None:
    log.info(
        "Embedding summary: %d requests, %d texts sent, cache hits %d memory / %d disk, "
        "%d in-flight duplicates, %d retries, %d throttled (429), latency p50 %s s / p95 %s s, "
        "%.2f s waiting on the rate limiter, %.2f s wall, event-loop lag p99 %s ms",
        statistics["requests"],
        statistics["texts_requested"],
        statistics["cache_hits_memory"],
        statistics["cache_hits_disk"],
        statistics["in_flight_dedup_hits"],
        statistics["retries"],
        statistics["throttled_429"],
        statistics["latency_p50_seconds"],
        statistics["latency_p95_seconds"],
        statistics["limiter_wait_seconds"],
        statistics["embedding_seconds"],
        statistics["loop_lag_p99_ms"],
    )
