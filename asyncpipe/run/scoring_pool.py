"""The small process pool that scores puzzles, so the event loop never does CPU-heavy work.

Scoring a puzzle (`asyncpipe.puzzle.scoring.score_puzzle`) is about 0.1 s of numpy on
one core: done on the event loop it would stall every request in flight. This
pool runs it in `scoring_workers` child processes through
`loop.run_in_executor`, sending compact float32 arrays (and the words' variant
keys, so that a worker never reads the lexicon) and getting a small picklable
`PuzzleScore` back.

- Workers are started with `spawn`: safe in a process that has threads (the
  embedding store's, the SDK's), unlike `fork`. Each builds the solver's split
  table once, as it starts, and ignores SIGINT and SIGTERM: a Ctrl-C reaches
  the whole process group, a SIGTERM may too, and either is the parent's to
  handle (`asyncpipe.run.interrupt`), which shuts the pool down in order.
  Workers run at a lower priority than the run (niceness 10), so that a busy
  pool never keeps the event loop waiting for a core.
- A worker dies with its parent. A parent killed with SIGKILL runs no cleanup,
  and a pool worker would otherwise wait forever on its task queue (it holds
  that pipe's write end itself, so it never sees end-of-file). On Linux the
  kernel sends the worker SIGKILL when the parent goes (PR_SET_PDEATHSIG);
  elsewhere a thread watches the parent's pid. That start-up code lives in
  `scoring_worker`, so a worker does not import asyncio or this module.
- A capacity limit (twice the workers) caps the puzzles handed over at once, in
  the manner of anyio's `to_process.run_sync(limiter=...)`, so a huge batch
  does not queue all its arrays in the executor.
- The pool lives for one run: `async with ScoringPool(...)`. On the way out it
  shuts down and waits for its workers; after an error or a cancellation it
  first cancels the pending work. No child process outlives the run.
- While the pool is open, `executor` lends its ProcessPoolExecutor to other CPU
  work of the run: the Gemini REST answers are decoded there
  (`GeminiProvider.decode_in`), while the workers wait for puzzles anyway.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from asyncpipe.puzzle.scoring import PuzzleScore, score_puzzle
from asyncpipe.puzzle.solver import DEFAULT_AMBIGUITY_MARGIN
from asyncpipe.puzzle.words import variant_key
from asyncpipe.run.scoring_worker import ready, start_worker


@dataclass(frozen=True)
class PoolStatistics:
    """What the pool did; a snapshot, taken by `ScoringPool.statistics()`."""

    #: Worker processes the pool runs.
    workers: int = 0
    #: Puzzles scored by the workers in this run (not those a resumed run had recorded).
    puzzles_scored: int = 0
    #: Wall time during which at least one puzzle was in the pool: queued or scored.
    busy_seconds: float = 0.0


class ScoringPool:
    def __init__(
        self,
        workers: int,
        groups: int,
        size: int,
        ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN,
    ) -> None:
        self._workers = workers
        self._groups = groups
        self._size = size
        self._ambiguity_margin = ambiguity_margin
        self._executor: ProcessPoolExecutor | None = None
        self._warm_up: list[asyncio.Future[None]] = []
        self._capacity = asyncio.Semaphore(2 * workers)
        self._scored = 0
        self._in_pool = 0
        self._busy_since = 0.0
        self._busy_seconds = 0.0

    @property
    def executor(self) -> ProcessPoolExecutor | None:
        """The workers' executor while the pool is open (`async with`); None before and after.

        For other CPU-heavy work of the run, such as decoding embedding answers. Work
        submitted here shares the workers with scoring and is not counted in
        `statistics()`, and the pool still shuts the executor down on the way out.
        """
        return self._executor

    async def __aenter__(self) -> ScoringPool:
        self._executor = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self._groups, self._size, os.getpid()),
        )
        # The executor starts a worker only when work is submitted: one no-op each
        # starts them all now, so they are up (split table built) before the first puzzle.
        loop = asyncio.get_running_loop()
        self._warm_up = [loop.run_in_executor(self._executor, ready) for _ in range(self._workers)]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for started in self._warm_up:  # a worker that failed to start shows in score()
            started.cancel()
        # Waiting for the workers blocks; in a thread, so the loop can finish its own
        # shutdown meanwhile. An error cancels what has not started yet.
        shutdown = functools.partial(executor.shutdown, wait=True, cancel_futures=error is not None)
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, shutdown))

    async def score(
        self, words: Sequence[str], word_vectors: np.ndarray, theme_vectors: np.ndarray
    ) -> PuzzleScore:
        if self._executor is None:
            raise RuntimeError("ScoringPool used outside `async with pool:`")
        work = functools.partial(
            score_puzzle,
            np.ascontiguousarray(word_vectors, dtype=np.float32),
            np.ascontiguousarray(theme_vectors, dtype=np.float32),
            list(words),
            self._size,
            self._ambiguity_margin,
            # Keyed here, where the lexicon is loaded anyway: a worker never reads it.
            [variant_key(word.lower()) for word in words],
        )
        loop = asyncio.get_running_loop()
        async with self._capacity:
            if self._in_pool == 0:
                self._busy_since = loop.time()
            self._in_pool += 1
            try:
                result = await loop.run_in_executor(self._executor, work)
            finally:
                self._in_pool -= 1
                if self._in_pool == 0:
                    self._busy_seconds += loop.time() - self._busy_since
        self._scored += 1
        return result

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            workers=self._workers,
            puzzles_scored=self._scored,
            busy_seconds=round(self._busy_seconds, 3),
        )
