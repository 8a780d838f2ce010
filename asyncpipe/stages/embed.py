"""Embed every theme and its candidates through the engine, concurrently, and rank them.

An `asyncio.TaskGroup` runs a fixed number of theme workers that pull from a
shared iterator, so a batch of 100,000 themes holds only a bounded number in
flight and never creates one task per theme. The workers are many more than
the requests in flight: the engine coalesces their texts into full batches,
so enough themes must be waiting to fill them.

A theme whose embeddings still fail after the engine's retries (API_FAILED),
or that has a text the provider cannot embed (UNEMBEDDABLE_TEXT), is recorded
as a `ThemeFailure` and the run goes on; the assembly replaces it with a
spare. A fatal provider error (bad key) propagates and stops the run. Once the
engine is stopped (a signal), the workers take no new theme, and a theme left
waiting is simply not finished: it is neither embedded nor failed. Results
are keyed by theme and listed in input order, so the order in which themes
finish never shows in the outputs.

A `ThemeJournal` (the run's checkpoint) hears of each theme as it finishes, so
an interrupted run can be resumed without redoing it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Container, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.errors import EmbeddingStopped, RetryableEmbeddingError, UnembeddableTextError
from asyncpipe.puzzle.embedded import EmbeddedTheme, VectorRows
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.ranking import cosine_to, rank_candidates, typicality
from asyncpipe.run.progress import ProgressReporter

#: Theme workers per request slot, beyond what one full batch needs, so the next
#: batch is already filling while the current ones are in flight.
_QUEUE_DEPTH = 2
#: Themes of a batch share many candidates (in-flight de-duplication and the cache
#: absorb them): measured on the default batch, a theme brings about a quarter of
#: its texts as new ones.
_NEW_TEXT_SHARE = 0.25
_MAX_THEME_WORKERS = 1024


@dataclass
class EnhanceOutcome:
    # repr=False: on Python 3.11, asyncio.run() formats the repr of its main task,
    # result included, each time it checks the SIGINT handler; printing every
    # vector of a batch there cost seconds.
    embedded: dict[str, EmbeddedTheme] = field(default_factory=dict, repr=False)
    failed_themes: dict[str, ThemeFailure] = field(default_factory=dict)
    seconds: float = 0.0


class ThemeJournal(Protocol):
    async def theme_finished(self, theme: str, failure: ThemeFailure | None) -> None:
        """`theme` was embedded (failure None) or failed for good; retryable failures
        (`FailureKind.retryable`) are not reported, so a later run tries those themes again."""


def theme_workers(max_concurrent: int, batch_size: int, texts_per_theme: float) -> int:
    """Themes to keep in flight so every request slot has full batches waiting."""
    new_texts = max(1.0, texts_per_theme * _NEW_TEXT_SHARE)
    themes_per_batch = max(1, math.ceil(batch_size / new_texts))
    return min(_MAX_THEME_WORKERS, max_concurrent * themes_per_batch * _QUEUE_DEPTH)


async def embed_and_rank(
    themes: Sequence[tuple[str, Sequence[str]]],
    engine: EmbeddingEngine,
    workers: int,
    progress: ProgressReporter | None = None,
    journal: ThemeJournal | None = None,
    by_typicality: Container[str] = frozenset(),
    spares: Iterable[tuple[str, Sequence[str]]] = (),
) -> EnhanceOutcome:
    """Embed each (theme, candidates) pair and rank the candidates against the theme:
    by typicality for the themes in `by_typicality` (a category's members), else by
    their cosine to the theme.

    `spares`: the themes a later round may draw, in draw order. Their texts fill
    the round's requests where that costs no time (`EmbeddingEngine.plan`), so a
    round of spares often finds them all in memory; they are not ranked here."""
    outcome = EnhanceOutcome()
    work: Iterator[tuple[str, Sequence[str]]] = iter(themes)
    started = time.perf_counter()

    async def worker() -> None:
        for theme, candidates in work:
            failure: ThemeFailure | None = None
            try:
                outcome.embedded[theme] = await _embed_theme(
                    theme, candidates, engine, theme in by_typicality, ranker
                )
            except EmbeddingStopped:
                return
            except UnembeddableTextError as error:
                failure = ThemeFailure(FailureKind.UNEMBEDDABLE_TEXT, f"embedding failed: {error}")
            except RetryableEmbeddingError as error:
                failure = ThemeFailure(FailureKind.API_FAILED, f"embedding failed: {error}")
            if failure is not None:
                outcome.failed_themes[theme] = failure
            if progress is not None:
                progress.record(successful=failure is None)
            if journal is not None and (failure is None or not failure.kind.retryable):
                await journal.theme_finished(theme, failure)

    # Every text of the round is known now: planned before any theme asks, so the
    # requests go out in full batches from the first to the last.
    engine.plan(
        (text for theme, candidates in themes for text in (theme, *candidates)),
        filler=(text for theme, candidates in spares for text in (theme, *candidates)),
    )
    await engine.planned()  # the first requests leave before the themes ask
    # One ranking thread, not asyncio's default pool of up to six: each thread doing
    # numpy on 3072-value rows is one more holder of the GIL the loop waits for.
    ranker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asyncpipe-ranking")
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(workers, len(themes)))):
                group.create_task(worker())
    finally:
        ranker.shutdown(wait=False, cancel_futures=True)
    outcome.seconds = time.perf_counter() - started
    # Workers finish in any order; the outputs list themes in the order they were given.
    order = [theme for theme, _ in themes]
    outcome.embedded = {t: outcome.embedded[t] for t in order if t in outcome.embedded}
    outcome.failed_themes = {
        t: outcome.failed_themes[t] for t in order if t in outcome.failed_themes
    }
    return outcome


async def _embed_theme(
    theme: str,
    candidates: Sequence[str],
    engine: EmbeddingEngine,
    members: bool,
    ranker: Executor,
) -> EmbeddedTheme:
    theme_vector, *rows = await engine.embed_rows([theme, *candidates])
    # Ranked in a thread: at 3072 dimensions a theme is a few milliseconds of numpy, and
    # one answer often completes several themes at once, which on the loop was the
    # event-loop lag's p99.
    rank = functools.partial(_ranked, theme, candidates, theme_vector, rows, members)
    return await asyncio.get_running_loop().run_in_executor(ranker, rank)


def _ranked(
    theme: str,
    candidates: Sequence[str],
    theme_vector: np.ndarray,
    rows: list[np.ndarray],
    members: bool,
) -> EmbeddedTheme:
    # The engine's shared rows are kept; the matrix stacked to rank them is not.
    candidate_vectors = VectorRows(rows, theme_vector.shape[0])
    matrix = np.asarray(candidate_vectors)
    scores = cosine_to(theme_vector, matrix)
    order_by = typicality(theme_vector, matrix) if members else None
    ranked = rank_candidates(theme, candidates, scores, order_by)
    return EmbeddedTheme(theme_vector, tuple(candidates), candidate_vectors, scores, ranked)
