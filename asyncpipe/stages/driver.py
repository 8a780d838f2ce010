"""Stage 3's asynchronous core: embed the themes, assemble and score the puzzles.

`make_puzzles` runs inside one event loop: the embedding engine, the scoring
pool, the progress reporter and the loop-lag monitor are opened together and
closed together. Window by window (`asyncpipe.stages.windows`), it carries out
the decisions of the round planner (`asyncpipe.stages.planner`: which themes to
embed, when to draw spares, what a rebuild drops, when a signal cuts the run
short) and hands each window's result to the outputs' keeper before letting it go.
It records each finished theme and scored puzzle in the run's checkpoint, and lets
the work in flight wind down after a signal (`asyncpipe.run.interrupt`), or after the engine
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
from asyncpipe.io.kept_outputs import KeptOutputs
from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.assembly import AssemblyResult, Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.failures import ThemeFailure
from asyncpipe.puzzle.history import NO_MEMORY, GroupMemory
from asyncpipe.puzzle.lexicon import Lexicon
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
from asyncpipe.stages.planner import (
    Done,
    Embed,
    PlannedBatch,
    PuzzleKey,
    Rebuild,
    RoundPlanner,
    Score,
)
from asyncpipe.stages.themes import ThemeSelection
from asyncpipe.stages.windows import MadeWindows, Window, batch_windows

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
    assembly: AssemblyResult
    scores: list[PuzzleScore]
    below_bar: list[bool]
    statistics: RunStatistics
    #: A signal cut the work short; `assembly` holds only the completed (scored) puzzles.
    partial: bool
    #: Every theme given up in this stage: failed embedding, dropped by a rebuild, or
    #: unusable by the assembly.
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
    keeper: KeptOutputs | None = None,
) -> MadePuzzles:
    """Embed, assemble and score, window by window (`asyncpipe.stages.windows`), in
    the rounds the planner decides for each (`RoundPlanner`); `keeper` takes each
    window's result before its vectors are let go.

    `categories`: the lexicon category of each theme whose candidates are its members;
    those are ranked by typicality and chosen by `asyncpipe.puzzle.selection`, which
    keeps to `history`, the groups the published batches forbid.

    After a signal no new round or window starts; the puzzles assembled from the
    themes finished by then, and scored within the grace, are the partial result. So
    it is once the day's requests are spent, the scoring then taking the time it needs.
    """
    # What was loaded so far (the lexicon, the index, the candidates: millions of
    # objects) lives to the end of the run: frozen out of the collector's reach, or
    # each full collection walks all of it, 50 to 70 ms with the loop stopped.
    gc.freeze()
    generation = params.puzzle_generation
    shutdown = run.shutdown
    ordered = [theme for theme in selection.all_themes if theme in usable]
    chosen = set(selection.themes)
    windows = batch_windows(
        [theme for theme in ordered if theme in chosen],
        generation.total_puzzle_count,
        generation.themes_per_puzzle,
        generation.puzzles_per_window,
    )
    spares = [theme for theme in ordered if theme not in chosen]
    lexicon = load_lexicon() if categories else None
    mean_texts = 1 + sum(len(usable[theme]) for theme in ordered) / max(1, len(ordered))
    workers = theme_workers(
        params.concurrency.max_concurrent_requests, params.concurrency.batch_size, mean_texts
    )
    async with (
        # Opened first: the workers start while the themes are embedded.
        ScoringPool(
            params.concurrency.scoring_workers,
            generation.themes_per_puzzle,
            generation.words_per_theme,
        ) as pool,
        open_engine(provider, params, run.cache_dir, run.refused) as engine,
        ProgressReporter(
            sum(len(window.themes) for window in windows),
            params.logging.progress_interval,
            bar=run.progress_bar,
        ) as progress,
        LoopLagMonitor() as lag,
        shutdown.watching(),
    ):
        if isinstance(provider, GeminiProvider):
            # Answers are decoded in the pool's workers, idle while the themes are
            # embedded: at 3072 dimensions an answer is 10 to 60 ms of CPU, which on
            # the loop was the event-loop lag's p99. The pool outlives the requests.
            provider.decode_in(pool.executor)
        maker = _WindowMaker(
            params,
            categories,
            lexicon,
            history,
            _EmbeddingRound(
                engine, workers, progress, run.checkpoint, usable, frozenset(categories or ())
            ),
            pool,
            run,
            keeper,
        )
        for window in windows:
            if maker.made.windows and (shutdown.requested or engine.stopped):
                maker.made.partial = True  # a window not started is a window not made
                break
            if len(windows) > 1:
                log.info(
                    "Window %d of %d: puzzles %d to %d",
                    window.number,
                    len(windows),
                    window.first_puzzle,
                    window.first_puzzle + window.puzzles - 1,
                )
            spares = await maker.make(window, spares)
            if maker.made.partial:
                break

    # Read once the engine is closed: a request of the spares' filler may outlive the
    # round that sent it (a retry after a 429), and is counted only when it is over.
    recorded = run.recorded
    made = maker.made
    failed = made.failed_in_rounds
    statistics = RunStatistics(
        themes_embedded=made.themes_embedded,
        themes_failed_embedding=sum(failure.kind.embedding for failure in failed.values()),
        embedding_seconds=maker.embedding_seconds,
        scoring_seconds=maker.scoring_seconds,
        puzzles_rebuilt=made.puzzles_rebuilt,
        themes_resumed=len(recorded.themes) if recorded else 0,
        puzzle_scores_resumed=len(recorded.scores) if recorded else 0,
        engine=engine.statistics(),
        pool=pool.statistics(),
        loop_lag=lag.statistics(),
    )
    log.info("%s", statistics.summary_line())
    return MadePuzzles(
        made.assembly,
        list(made.scores),
        list(made.below_bar),
        statistics,
        made.partial,
        made.failed_themes,
        engine.quota_spent,
    )


@dataclass
class _WindowMaker:
    """Makes the windows one after the other, each through a planner of its own."""

    params: Params
    categories: Mapping[str, str] | None
    lexicon: Lexicon | None
    history: GroupMemory
    embedding: _EmbeddingRound
    pool: ScoringPool
    run: RunContext
    keeper: KeptOutputs | None
    made: MadeWindows = field(default_factory=MadeWindows)
    embedding_seconds: float = 0.0
    scoring_seconds: float = 0.0

    async def make(self, window: Window, spares: Sequence[str]) -> list[str]:
        """Make the window's puzzles, hand them to the keeper and let their vectors go;
        returns the spares left for the next windows.

        Nothing of the window outlives this call but what `made` and the keeper keep:
        its planner, its themes and its result are this frame's alone."""
        recorded = self.run.recorded
        planner = RoundPlanner(
            [*window.themes, *spares],
            window.themes,
            self.params.puzzle_generation,
            self.params.quality,
            recorded.failed_themes if recorded is not None else None,
            recorded.scores if recorded is not None else None,
            categories=self.categories,
            lexicon=self.lexicon,
            candidates=self.params.candidates,
            history=self.history,
            puzzles=window.puzzles,
        )
        result = await self._rounds(planner)
        if self.keeper is not None:
            await asyncio.to_thread(
                self.keeper.take,
                result.embedded,
                result.assembly.puzzles,
                result.scores,
                result.below_bar,
            )
        self.made.add(result)
        return list(planner.spares)

    async def _rounds(self, planner: RoundPlanner) -> PlannedBatch:
        """One window's rounds, as its planner decides them."""
        shutdown, engine = self.run.shutdown, self.embedding.engine
        while True:
            # Read after the planner heard of the last step: it decides on what it was
            # told. The planner assembles puzzles when told of a round (pure Python, up
            # to a second for a large batch): in a thread, so the loop keeps serving
            # the signals, the progress and the requests still in flight.
            winding_down = shutdown.requested or engine.stopped  # a signal, or a spent day
            step = await asyncio.to_thread(planner.next_step, winding_down)
            match step:
                case Embed() as step:
                    if step.spares:
                        self.embedding.progress.add_total(step.drawn)
                        log.info("Embedding %d spare themes to replace failed ones", step.drawn)
                    part = await self.embedding.run(step, shutdown, planner.spares)
                    self.embedding_seconds += part.seconds
                    await asyncio.to_thread(
                        planner.embedded, part.embedded, part.failed_themes, engine.stopped
                    )
                case Score(puzzles):
                    started = time.perf_counter()
                    scores = await _score(
                        puzzles, planner.embedded_themes, self.pool, self.run.checkpoint, shutdown
                    )
                    self.scoring_seconds += time.perf_counter() - started
                    await asyncio.to_thread(planner.scored, scores)
                case Rebuild() as step:
                    log.info("Rebuilding %d puzzles below the quality bar", step.puzzles)
                case Done(result):
                    return result


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
