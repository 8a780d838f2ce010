"""Stage 3's asynchronous core: embed the themes, assemble and score the puzzles.

`make_puzzles` runs inside one event loop: the embedding engine, the scoring
pool, the progress reporter and the loop-lag monitor are opened together and
closed together. It carries out the decisions of the round planner
(`asyncpipe.stages.planner`: which themes to embed, when to draw spares, what
a rebuild drops, when a signal cuts the run short), records each finished
theme and scored puzzle in the run's checkpoint, and lets the work in flight
wind down after a signal (`asyncpipe.run.interrupt`), or after the engine
stopped itself because the day's requests are spent (`DailyQuotaSpent`): the
same winding down, with no grace to time, since nothing asked for haste.
`asyncpipe.run.pipeline` decides what goes in and writes what comes out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.embeddings.providers.base import EmbeddingProvider
from asyncpipe.embeddings.providers.gemini import GeminiProvider
from asyncpipe.embeddings.session import open_engine
from asyncpipe.errors import DailyQuotaSpent, EmbeddingError
from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.assembly import AssemblyResult, Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.failures import ThemeFailure
from asyncpipe.puzzle.history import NO_MEMORY, GroupMemory
from asyncpipe.puzzle.quality import puzzle_arrays
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.run.checkpoint import Checkpoint, Recorded
from asyncpipe.run.interrupt import Shutdown
from asyncpipe.run.loop_lag import LoopLagMonitor
from asyncpipe.run.progress import ProgressReporter
from asyncpipe.run.scoring_pool import ScoringPool
from asyncpipe.run.statistics import RunStatistics
from asyncpipe.settings.sections import Params
from asyncpipe.stages.embed import EnhanceOutcome, embed_and_rank, theme_workers
from asyncpipe.stages.planner import Done, Embed, PuzzleKey, Rebuild, RoundPlanner, Score
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
    #: Texts not to request, and the error their themes get instead: what the Batch API
    #: jobs that ran first refused, or failed to embed (`asyncpipe.embeddings.batch_jobs`).
    refused: Mapping[str, EmbeddingError] = field(default_factory=dict)


@dataclass(repr=False)  # asyncio.run formats its result's repr on Python 3.11: keep it cheap
class MadePuzzles:
    #: The themes embedded, and those that failed embedding or were dropped by a rebuild.
    outcome: EnhanceOutcome
    assembly: AssemblyResult
    scores: list[PuzzleScore]
    below_bar: list[bool]
    statistics: RunStatistics
    #: A signal cut the work short; `assembly` holds only the completed (scored) puzzles.
    partial: bool
    #: Every theme given up in this stage: `outcome`'s failures, then the assembly's.
    failed_themes: Mapping[str, ThemeFailure]
    #: Why the engine stopped by itself, when the day's requests were spent.
    quota_spent: DailyQuotaSpent | None = None


async def make_puzzles(
    params: Params,
    selection: ThemeSelection,
    usable: dict[str, tuple[str, ...]],
    provider: EmbeddingProvider,
    run: RunContext,
    categories: Mapping[str, str] | None = None,
    history: GroupMemory = NO_MEMORY,
) -> MadePuzzles:
    """Embed, assemble and score, in the rounds the planner decides (`RoundPlanner`).

    `categories`: the lexicon category of each theme whose candidates are its members;
    those are ranked by typicality and chosen by `asyncpipe.puzzle.selection`, which
    keeps to `history`, the groups the published batches forbid.

    After a signal no new round starts; the puzzles assembled from the themes
    finished by then, and scored within the grace, are the partial result. So it
    is once the day's requests are spent, the scoring then taking the time it needs.
    """
    # What was loaded so far (the lexicon, the index, the candidates: millions of
    # objects) lives to the end of the run: frozen out of the collector's reach, or
    # each full collection walks all of it, 50 to 70 ms with the loop stopped.
    gc.freeze()
    generation = params.puzzle_generation
    shutdown, checkpoint, recorded = run.shutdown, run.checkpoint, run.recorded
    ordered = [theme for theme in selection.all_themes if theme in usable]
    planner = RoundPlanner(
        ordered,
        selection.themes,
        generation,
        params.quality,
        recorded.failed_themes if recorded is not None else None,
        recorded.scores if recorded is not None else None,
        categories=categories,
        lexicon=load_lexicon() if categories else None,
        candidates=params.candidates,
        history=history,
    )
    mean_texts = 1 + sum(len(usable[theme]) for theme in ordered) / max(1, len(ordered))
    workers = theme_workers(
        params.concurrency.max_concurrent_requests, params.concurrency.batch_size, mean_texts
    )
    embedding_seconds = scoring_seconds = 0.0
    async with (
        # Opened first: the workers start while the themes are embedded.
        ScoringPool(
            params.concurrency.scoring_workers,
            generation.themes_per_puzzle,
            generation.words_per_theme,
        ) as pool,
        open_engine(provider, params, run.cache_dir, run.refused) as engine,
        ProgressReporter(
            planner.primary_count, params.logging.progress_interval, bar=run.progress_bar
        ) as progress,
        LoopLagMonitor() as lag,
        shutdown.watching(),
    ):
        if isinstance(provider, GeminiProvider):
            # Answers are decoded in the pool's workers, idle while the themes are
            # embedded: at 3072 dimensions an answer is 10 to 60 ms of CPU, which on
            # the loop was the event-loop lag's p99. The pool outlives the requests.
            provider.decode_in(pool.executor)
        embedding = _EmbeddingRound(
            engine, workers, progress, checkpoint, usable, frozenset(categories or ())
        )
        while True:
            # Read after the planner heard of the last step: it decides on what it was told.
            # The planner assembles puzzles when told of a round (pure Python, up to a
            # second for a large batch): in a thread, so the loop keeps serving
            # the signals, the progress and the requests still in flight.
            winding_down = shutdown.requested or engine.stopped  # a signal, or a spent day
            step = await asyncio.to_thread(planner.next_step, winding_down)
            match step:
                case Embed() as step:
                    if step.spares:
                        progress.add_total(step.drawn)
                        log.info("Embedding %d spare themes to replace failed ones", step.drawn)
                    part = await embedding.run(step, shutdown, planner.spares)
                    embedding_seconds += part.seconds
                    await asyncio.to_thread(
                        planner.embedded, part.embedded, part.failed_themes, engine.stopped
                    )
                case Score(puzzles):
                    started = time.perf_counter()
                    scores = await _score(
                        puzzles, planner.embedded_themes, pool, checkpoint, shutdown
                    )
                    scoring_seconds += time.perf_counter() - started
                    await asyncio.to_thread(planner.scored, scores)
                case Rebuild() as step:
                    log.info("Rebuilding %d puzzles below the quality bar", step.puzzles)
                case Done(result):
                    break

    # Read once the engine is closed: a request of the spares' filler may outlive the
    # round that sent it (a retry after a 429), and is counted only when it is over.
    outcome = EnhanceOutcome(
        dict(result.embedded), dict(result.failed_in_rounds), embedding_seconds
    )
    statistics = RunStatistics(
        themes_embedded=len(outcome.embedded),
        themes_failed_embedding=sum(
            failure.kind.embedding for failure in outcome.failed_themes.values()
        ),
        embedding_seconds=outcome.seconds,
        scoring_seconds=scoring_seconds,
        puzzles_rebuilt=result.puzzles_rebuilt,
        themes_resumed=len(recorded.themes) if recorded else 0,
        puzzle_scores_resumed=len(recorded.scores) if recorded else 0,
        engine=engine.statistics(),
        pool=pool.statistics(),
        loop_lag=lag.statistics(),
    )
    log.info("%s", statistics.summary_line())
    return MadePuzzles(
        outcome,
        result.assembly,
        list(result.scores),
        list(result.below_bar),
        statistics,
        result.partial,
        result.failed_themes,
        engine.quota_spent,
    )


@dataclass
class _EmbeddingRound:
    """Rounds of themes through the engine, each wound down by a signal (`Shutdown.guard`)."""

    engine: EmbeddingEngine
    workers: int
    progress: ProgressReporter
    checkpoint: Checkpoint
    usable: dict[str, tuple[str, ...]]
    #: Themes whose candidates are a category's members: ranked by typicality.
    members: frozenset[str]

    async def run(self, step: Embed, shutdown: Shutdown, spares: Sequence[str]) -> EnhanceOutcome:
        """Embed the step's themes; those that failed for good before count as failed.
        `spares`: the themes later rounds may draw, fetched where that costs no time."""
        for _ in step.resumed_failures:
            self.progress.record(successful=False)
        todo = [(theme, self.usable[theme]) for theme in step.themes]
        work = asyncio.ensure_future(
            embed_and_rank(
                todo,
                self.engine,
                self.workers,
                self.progress,
                self.checkpoint,
                self.members,
                spares=((theme, self.usable[theme]) for theme in spares),
            )
        )
        await shutdown.guard(work, on_stop=self.engine.stop, on_deadline=self.engine.abandon)
        return work.result()


async def _score(
    puzzles: Sequence[Puzzle],
    embedded: Mapping[str, EmbeddedTheme],
    pool: ScoringPool,
    checkpoint: Checkpoint,
    shutdown: Shutdown,
) -> dict[PuzzleKey, PuzzleScore]:
    """Score the puzzles, each recorded in the checkpoint as it is scored.

    After a signal the scoring goes on for the grace left, then what has not
    finished is cancelled: those puzzles are missing from the scores returned.
    """
    scored: dict[PuzzleKey, PuzzleScore] = {}

    async def score_one(puzzle: Puzzle) -> None:
        score = await pool.score(puzzle.words, *puzzle_arrays(puzzle, embedded))
        score = score.with_wordplay(puzzle.themes)  # the pool sees vectors, not themes
        scored[tuple(puzzle.words)] = score
        await checkpoint.puzzle_scored(puzzle.words, score)

    async def score_all() -> None:
        async with asyncio.TaskGroup() as group:
            for puzzle in puzzles:
                group.create_task(score_one(puzzle))

    work = asyncio.ensure_future(score_all())
    await shutdown.guard(work)
    if not work.cancelled():
        work.result()  # an error in scoring is a bug: let it show
    return scored
