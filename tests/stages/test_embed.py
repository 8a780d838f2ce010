"""embed_and_rank: every theme embedded through the engine and ranked, failures isolated, order kept.

The providers here are real: GloVe over the session's index, and small classes
of this file that implement the EmbeddingProvider protocol around it (one that
sleeps a text-dependent moment so themes finish out of order, one that fails
for a chosen text). Batching, caching and retries are the engine's job and are
tested in test_engine.py; here the engine is simply the one a run would use.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asyncpipe.embeddings.cache import LruVectorCache
from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.embeddings.limits import RequestGate
from asyncpipe.embeddings.providers.base import EmbeddingProvider, ProviderInfo
from asyncpipe.embeddings.providers.glove import GloveProvider
from asyncpipe.embeddings.retry import RetryPolicy
from asyncpipe.embeddings.session import open_engine
from asyncpipe.errors import (
    EmbeddingError,
    FatalEmbeddingError,
    RetryableEmbeddingError,
    UnembeddableTextError,
)
from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.run.progress import ProgressReporter
from asyncpipe.settings.sections import Params
from asyncpipe.stages import embed as embed_stage
from asyncpipe.stages.embed import EnhanceOutcome, embed_and_rank, theme_workers

THEMES: list[tuple[str, list[str]]] = [
    ("Birds", ["sparrow", "eagle", "piano", "robin", "hawk", "car", "pigeon", "finch"]),
    ("Fruit", ["apple", "banana", "tractor", "mango", "pear", "cherry", "grape"]),
    ("Metals", ["iron", "copper", "zinc", "poetry", "nickel", "tin", "silver"]),
    ("Musical instruments", ["guitar", "violin", "cello", "drums", "banana", "flute", "harp"]),
    ("Weather", ["rain", "snow", "storm", "wind", "fog", "sandwich", "hail"]),
    ("Planets", ["mars", "venus", "jupiter", "saturn", "mercury", "neptune", "apple"]),
]


def many_themes(index: VocabularyIndex, count: int) -> list[tuple[str, list[str]]]:
    """`count` themes (Birds, Fruit, ..., Birds 2, ...), each with 7 candidates no other has."""
    words = [word for word in index.words[500:3000] if word.isalpha()]
    themes = []
    for number in range(count):
        theme = THEMES[number % len(THEMES)][0]
        round_number = number // len(THEMES)
        name = theme if round_number == 0 else f"{theme} {round_number + 1}"
        themes.append((name, words[7 * number : 7 * number + 7]))
    return themes


class SlowGlove:
    """GloVe vectors after a short sleep that depends on the batch, so batches finish out of order."""

    def __init__(self, index: VocabularyIndex) -> None:
        self._glove = GloveProvider(index)
        self.calls = 0

    @property
    def info(self) -> ProviderInfo:
        return self._glove.info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        await asyncio.sleep((zlib.crc32("|".join(texts).encode()) % 7) / 1000)
        return await self._glove.embed(texts)

    async def aclose(self) -> None:
        await self._glove.aclose()


class FailingGlove:
    """GloVe vectors, except for any batch holding `broken_text`: `error()`, after a yield."""

    def __init__(
        self, index: VocabularyIndex, broken_text: str, error: Callable[[str], EmbeddingError]
    ) -> None:
        self._glove = GloveProvider(index)
        self._broken_text = broken_text
        self._error = error

    @property
    def info(self) -> ProviderInfo:
        return self._glove.info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        await asyncio.sleep(0)
        if self._broken_text in texts:
            raise self._error(self._broken_text)
        return await self._glove.embed(texts)

    async def aclose(self) -> None:
        return None


class CountingEngine(EmbeddingEngine):
    """The real engine, counting the themes waiting on it and the order they finish in."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.themes_in_flight = 0
        self.max_themes_in_flight = 0
        self.finished: list[str] = []

    async def embed_rows(self, texts: Sequence[str]) -> list[np.ndarray]:
        self.themes_in_flight += 1
        self.max_themes_in_flight = max(self.max_themes_in_flight, self.themes_in_flight)
        try:
            return await super().embed_rows(texts)
        finally:
            self.themes_in_flight -= 1
            self.finished.append(texts[0])


def engine_for(
    provider: EmbeddingProvider,
    max_concurrent: int = 4,
    batch_size: int = 100,
    max_retries: int = 1,
) -> CountingEngine:
    return CountingEngine(
        provider,
        RequestGate(max_concurrent, requests_per_minute=None),
        RetryPolicy(max_retries=max_retries, base_delay=0.001),
        batch_size=batch_size,
        memory=LruVectorCache(10_000 * 4 * 64),
        linger=0.002,
    )


def known(index: VocabularyIndex, word: str) -> np.ndarray:
    vector = index.vector_of(word)
    assert vector is not None, word
    return vector


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@pytest.mark.asyncio
async def test_each_theme_is_embedded_and_its_candidates_ranked_by_cosine(
    glove: VocabularyIndex, tmp_path: Path
) -> None:
    async with open_engine(GloveProvider(glove), Params(), tmp_path) as engine:
        outcome = await embed_and_rank(THEMES, engine, workers=4)

    assert outcome.failed_themes == {}
    assert list(outcome.embedded) == [theme for theme, _ in THEMES]
    for theme, candidates in THEMES:
        embedded = outcome.embedded[theme]
        assert embedded.candidate_words == tuple(candidates)
        assert embedded.candidate_vectors.shape == (len(candidates), glove.dimension)
        theme_vector = unit(np.mean([known(glove, w) for w in theme.lower().split()], axis=0))
        np.testing.assert_allclose(unit(embedded.theme_vector), theme_vector, atol=1e-5)
        expected = np.array([unit(known(glove, word)) @ theme_vector for word in candidates])
        np.testing.assert_allclose(embedded.candidate_scores, expected, atol=1e-5)
        ranked = embedded.ranked
        assert ranked.theme == theme
        assert sorted(ranked.words) == sorted(set(candidates))
        assert list(ranked.scores) == sorted(ranked.scores, reverse=True)
        np.testing.assert_allclose(ranked.scores, expected[list(ranked.source_rows)], atol=1e-5)
    # The odd one out of each list ranks below the real members.
    assert outcome.embedded["Birds"].ranked.words[-2:] in {("piano", "car"), ("car", "piano")}
    assert outcome.embedded["Fruit"].ranked.words[-1] == "tractor"
    assert outcome.embedded["Metals"].ranked.words[-1] == "poetry"
    assert outcome.seconds > 0
    # Every text was asked for; the ones two themes share (apple, banana) were embedded once.
    summary = engine.statistics().to_json()
    all_texts = [text for theme, candidates in THEMES for text in [theme, *candidates]]
    assert summary["texts_asked"] == len(all_texts)
    assert summary["texts_requested"] == len(set(all_texts))


@pytest.mark.asyncio
async def test_the_spares_fill_the_round_and_a_later_round_finds_them_in_memory(
    glove: VocabularyIndex, tmp_path: Path
) -> None:
    themes, spares = THEMES[:4], THEMES[4:]
    async with open_engine(GloveProvider(glove), Params(), tmp_path) as engine:
        first = await embed_and_rank(themes, engine, workers=4, spares=spares)
        after_first = engine.statistics()
        later = await embed_and_rank(spares, engine, workers=4)
        after_later = engine.statistics()

    # The spares' texts went in the first round's one part-filled request; only the
    # round's own themes were ranked.
    assert list(first.embedded) == [theme for theme, _ in themes]
    assert after_first.requests == 1
    assert after_first.texts_prefetched > 0
    assert list(later.embedded) == [theme for theme, _ in spares]
    assert after_later.requests == 1  # the later round sent nothing


@pytest.mark.asyncio
async def test_themes_are_ranked_off_the_event_loops_thread(
    glove: VocabularyIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 3072 dimensions ranking a theme is milliseconds of numpy, and one answer can
    # complete several themes: on the loop's thread that was the lag's p99.
    ranked_in: set[int] = set()
    real = embed_stage.rank_candidates

    def recording(*args: Any, **kwargs: Any) -> Any:
        ranked_in.add(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_stage, "rank_candidates", recording)
    async with open_engine(GloveProvider(glove), Params(), tmp_path) as engine:
        outcome = await embed_and_rank(THEMES, engine, workers=4)

    assert list(outcome.embedded) == [theme for theme, _ in THEMES]
    assert ranked_in and threading.get_ident() not in ranked_in


@pytest.mark.asyncio
async def test_a_theme_the_provider_cannot_embed_is_recorded_and_the_others_finish(
    glove: VocabularyIndex,
) -> None:
    def refuse(text: str) -> UnembeddableTextError:
        return UnembeddableTextError(f"the provider refused {text!r}")

    # One batch holds every theme's texts; only the refused text's theme may fail.
    engine = engine_for(FailingGlove(glove, "Metals", refuse), batch_size=100)

    async with engine:
        outcome = await embed_and_rank(THEMES, engine, workers=6)

    assert set(outcome.failed_themes) == {"Metals"}
    assert outcome.failed_themes["Metals"].kind is FailureKind.UNEMBEDDABLE_TEXT
    assert "refused 'Metals'" in outcome.failed_themes["Metals"].reason
    assert list(outcome.embedded) == [theme for theme, _ in THEMES if theme != "Metals"]


@pytest.mark.asyncio
async def test_a_theme_glove_has_no_word_for_fails_alone(glove: VocabularyIndex) -> None:
    themes = [*THEMES[:2], ("Zzqxv Blorft", ["apple", "river"]), *THEMES[2:]]
    engine = engine_for(GloveProvider(glove))

    async with engine:
        outcome = await embed_and_rank(themes, engine, workers=2)

    assert list(outcome.failed_themes) == ["Zzqxv Blorft"]
    assert outcome.failed_themes["Zzqxv Blorft"].kind is FailureKind.UNEMBEDDABLE_TEXT
    assert "Zzqxv Blorft" in outcome.failed_themes["Zzqxv Blorft"].reason
    assert len(outcome.embedded) == len(THEMES)


@pytest.mark.asyncio
async def test_a_candidate_that_still_fails_after_retries_fails_only_its_theme(
    glove: VocabularyIndex,
) -> None:
    def unavailable(text: str) -> RetryableEmbeddingError:
        return RetryableEmbeddingError(f"503 unavailable for {text!r}", status=503)

    # One text a request, so the failing request holds nothing of another theme.
    engine = engine_for(FailingGlove(glove, "cherry", unavailable), batch_size=1, max_retries=2)

    async with engine:
        outcome = await embed_and_rank(THEMES, engine, workers=6)

    assert set(outcome.failed_themes) == {"Fruit"}
    assert outcome.failed_themes["Fruit"].kind is FailureKind.API_FAILED
    assert "embedding failed" in outcome.failed_themes["Fruit"].reason
    assert "503" in outcome.failed_themes["Fruit"].reason
    assert len(outcome.embedded) == len(THEMES) - 1
    assert engine.statistics().retries == 2


class ListJournal:
    def __init__(self) -> None:
        self.finished: dict[str, ThemeFailure | None] = {}

    async def theme_finished(self, theme: str, failure: ThemeFailure | None) -> None:
        self.finished[theme] = failure


@pytest.mark.asyncio
async def test_the_journal_hears_of_themes_finished_for_good_but_not_of_retryable_failures(
    glove: VocabularyIndex,
) -> None:
    def unavailable(text: str) -> RetryableEmbeddingError:
        return RetryableEmbeddingError(f"503 unavailable for {text!r}", status=503)

    themes = [*THEMES, ("Zzqxv Blorft", ["apple", "river"])]
    engine = engine_for(FailingGlove(glove, "cherry", unavailable), batch_size=1, max_retries=0)
    journal = ListJournal()

    async with engine:
        outcome = await embed_and_rank(themes, engine, workers=6, journal=journal)

    assert outcome.failed_themes["Fruit"].kind is FailureKind.API_FAILED
    assert "Fruit" not in journal.finished  # a resumed run tries it again
    assert journal.finished["Zzqxv Blorft"] == outcome.failed_themes["Zzqxv Blorft"]
    assert journal.finished["Zzqxv Blorft"].kind is FailureKind.UNEMBEDDABLE_TEXT
    embedded = {theme for theme, failure in journal.finished.items() if failure is None}
    assert embedded == set(outcome.embedded) == {t for t, _ in THEMES} - {"Fruit"}


@pytest.mark.asyncio
async def test_a_fatal_provider_error_stops_the_run(glove: VocabularyIndex) -> None:
    def bad_request(text: str) -> FatalEmbeddingError:
        return FatalEmbeddingError(f"400 bad request for {text!r}", status=400)

    engine = engine_for(FailingGlove(glove, "Metals", bad_request))

    with pytest.raises(ExceptionGroup) as raised:
        async with engine:
            await embed_and_rank(THEMES, engine, workers=3)

    assert raised.group_contains(FatalEmbeddingError, match="bad request for 'Metals'", depth=None)


@pytest.mark.parametrize("workers", [1, 3, 7])
@pytest.mark.asyncio
async def test_themes_in_flight_never_exceed_the_workers(
    glove: VocabularyIndex, workers: int
) -> None:
    themes = many_themes(glove, 24)
    engine = engine_for(SlowGlove(glove), max_concurrent=8, batch_size=10)

    async with engine:
        outcome = await embed_and_rank(themes, engine, workers)

    assert len(outcome.embedded) == 24
    assert engine.max_themes_in_flight == workers


@pytest.mark.asyncio
async def test_more_workers_than_themes_runs_every_theme_at_once(
    glove: VocabularyIndex,
) -> None:
    engine = engine_for(SlowGlove(glove))

    async with engine:
        outcome = await embed_and_rank(THEMES, engine, workers=50)

    assert len(outcome.embedded) == len(THEMES)
    assert engine.max_themes_in_flight == len(THEMES)


async def run_with(glove: VocabularyIndex, workers: int, max_concurrent: int) -> EnhanceOutcome:
    themes = [*many_themes(glove, 18), ("Zzqxv Blorft", ["apple"])]
    engine = engine_for(SlowGlove(glove), max_concurrent=max_concurrent, batch_size=4)
    async with engine:
        return await embed_and_rank(themes, engine, workers)


@pytest.mark.asyncio
async def test_results_are_the_same_whatever_the_concurrency(glove: VocabularyIndex) -> None:
    one = await run_with(glove, workers=1, max_concurrent=1)
    many = await run_with(glove, workers=16, max_concurrent=8)

    assert one.failed_themes == many.failed_themes
    assert list(one.failed_themes) == ["Zzqxv Blorft"]
    assert set(one.embedded) == set(many.embedded)
    for theme, embedded in one.embedded.items():
        other = many.embedded[theme]
        assert embedded.ranked == other.ranked
        assert embedded.candidate_words == other.candidate_words
        np.testing.assert_array_equal(embedded.theme_vector, other.theme_vector)
        np.testing.assert_array_equal(embedded.candidate_vectors, other.candidate_vectors)
        np.testing.assert_array_equal(embedded.candidate_scores, other.candidate_scores)


@pytest.mark.asyncio
async def test_themes_keep_the_input_order_whatever_finishes_first(
    glove: VocabularyIndex,
) -> None:
    # The all-embeddings table and the per-theme analysis are written in this order.
    themes = many_themes(glove, 18)
    broken = {themes[11][0], themes[4][0]}  # their candidates are unknown: they fail
    themes = [
        (theme, ["zzqxvblorft"] if theme in broken else candidates) for theme, candidates in themes
    ]
    engine = engine_for(SlowGlove(glove), max_concurrent=8, batch_size=3)

    async with engine:
        outcome = await embed_and_rank(themes, engine, workers=16)

    order = [theme for theme, _ in themes]
    assert engine.finished != order, "the themes happened to finish in order: nothing was proved"
    assert list(outcome.embedded) == [theme for theme in order if theme not in broken]
    assert list(outcome.failed_themes) == [themes[4][0], themes[11][0]]


@pytest.mark.asyncio
async def test_progress_records_each_theme_as_it_finishes(glove: VocabularyIndex) -> None:
    themes = [*THEMES, ("Zzqxv Blorft", ["apple"])]
    engine = engine_for(GloveProvider(glove))

    async with engine, ProgressReporter(len(themes), interval=60.0, bar=False) as progress:
        await embed_and_rank(themes, engine, workers=3, progress=progress)

    assert progress.done == len(themes)
    assert progress.line().startswith("Progress: 7/7 (100.0%) - 6 successful, 1 failed")


@pytest.mark.asyncio
async def test_no_themes_give_an_empty_outcome(glove: VocabularyIndex) -> None:
    provider = SlowGlove(glove)
    engine = engine_for(provider)

    async with engine:
        outcome = await embed_and_rank([], engine, workers=8)

    assert outcome.embedded == {}
    assert outcome.failed_themes == {}
    assert provider.calls == 0


def test_theme_workers_scale_with_the_slots_and_the_batch_and_are_capped() -> None:
    workers = theme_workers(max_concurrent=4, batch_size=100, texts_per_theme=11)

    # Every request slot has at least one full batch of themes behind it.
    assert workers >= 4 * 2
    assert theme_workers(8, 100, 11) == 2 * workers
    # Larger batches need more themes to fill; larger themes need fewer.
    assert theme_workers(4, 50, 11) <= workers <= theme_workers(4, 100, 5)
    assert theme_workers(max_concurrent=500, batch_size=100, texts_per_theme=1) == 1024
