"""Embed every theme and its candidates with the provider, concurrently, and rank them.

One asyncio task group runs a fixed number of workers that pull themes from a
shared iterator, so a batch of any size holds at most `max_concurrent` themes
in flight and never creates one task per theme. A theme whose embedding
fails is recorded with its reason and the run goes on; the assembly replaces
it with a spare. Results are keyed by theme, so the order in which themes
finish never changes what is assembled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from asyncpipe.embeddings.provider import EmbeddingProvider
from asyncpipe.errors import EmbeddingError
from asyncpipe.ranking import RankedTheme, cosine_to, rank_candidates


@dataclass(frozen=True)
class EmbeddedTheme:
    """A theme's vector; its candidates' vectors and cosines, in candidate order; their ranking."""

    theme_vector: np.ndarray
    candidate_words: tuple[str, ...]
    candidate_vectors: np.ndarray
    candidate_scores: np.ndarray
    ranked: RankedTheme


@dataclass
class EmbeddingStatistics:
    requests: int = 0
    texts_embedded: int = 0
    themes_done: int = 0
    themes_failed: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "texts_embedded": self.texts_embedded,
            "themes_embedded": self.themes_done,
            "themes_failed": self.themes_failed,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EnhanceOutcome:
    # repr=False: on Python 3.11, asyncio.run() formats the repr of its main task,
    # result included, each time it checks the SIGINT handler; printing every
    # vector of a batch there cost seconds.
    embedded: dict[str, EmbeddedTheme] = field(default_factory=dict, repr=False)
    failed_themes: dict[str, str] = field(default_factory=dict)
    statistics: EmbeddingStatistics = field(default_factory=EmbeddingStatistics)


ProgressCallback = Callable[[EmbeddingStatistics, int], None]


async def embed_and_rank(
    themes: Sequence[tuple[str, Sequence[str]]],
    provider: EmbeddingProvider,
    max_concurrent: int,
    batch_size: int,
    on_progress: ProgressCallback | None = None,
) -> EnhanceOutcome:
    """Embed each (theme, candidates) pair and rank the candidates against the theme."""
    outcome = EnhanceOutcome()
    work: Iterator[tuple[str, Sequence[str]]] = iter(themes)
    started = time.perf_counter()

    async def worker() -> None:
        for theme, candidates in work:
            try:
                outcome.embedded[theme] = await _embed_theme(
                    theme, candidates, provider, batch_size, outcome.statistics
                )
                outcome.statistics.themes_done += 1
            except EmbeddingError as error:
                outcome.failed_themes[theme] = f"embedding failed: {error}"
                outcome.statistics.themes_failed += 1
            if on_progress is not None:
                on_progress(outcome.statistics, len(themes))

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(max_concurrent, len(themes)))):
            group.create_task(worker())
    outcome.statistics.seconds = time.perf_counter() - started
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
    provider: EmbeddingProvider,
    batch_size: int,
    statistics: EmbeddingStatistics,
) -> EmbeddedTheme:
    texts = [theme, *candidates]
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        parts.append(await provider.embed(batch))
        statistics.requests += 1
        statistics.texts_embedded += len(batch)
    matrix = np.concatenate(parts)
    theme_vector, candidate_vectors = matrix[0], matrix[1:]
    scores = cosine_to(theme_vector, candidate_vectors)
    ranked = rank_candidates(theme, candidates, scores)
    return EmbeddedTheme(theme_vector, tuple(candidates), candidate_vectors, scores, ranked)
