"""embed_and_rank: every theme embedded and ranked, failures isolated, concurrency and batching bounded.

The providers here are real: GloVe over the session's index, and small classes
of this file that implement the EmbeddingProvider protocol around it (one that
sleeps and records what is in flight, one that fails for a chosen theme).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from asyncpipe.embeddings.glove import GloveProvider
from asyncpipe.embeddings.provider import ProviderInfo
from asyncpipe.enhance import EnhanceOutcome, embed_and_rank
from asyncpipe.errors import FatalEmbeddingError
from asyncpipe.vocabulary import VocabularyIndex

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


class RecordingProvider:
    """GloVe vectors after a short, text-dependent sleep; records calls, batches, concurrency."""

    def __init__(self, index: VocabularyIndex, themes: Sequence[tuple[str, Sequence[str]]]) -> None:
        self._glove = GloveProvider(index)
        self._last_text_of = {theme: [theme, *candidates][-1] for theme, candidates in themes}
        self._theme_of_last_text = {last: theme for theme, last in self._last_text_of.items()}
        self.batches: list[list[str]] = []
        self.calls_in_flight = 0
        self.max_calls_in_flight = 0
        self.themes_in_flight: set[str] = set()
        self.max_themes_in_flight = 0

    @property
    def info(self) -> ProviderInfo:
        return ProviderInfo("recording", "glove-in-a-test", self._glove.info.dimension)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if texts[0] in self._last_text_of:
            self.themes_in_flight.add(texts[0])
            self.max_themes_in_flight = max(self.max_themes_in_flight, len(self.themes_in_flight))
        self.calls_in_flight += 1
        self.max_calls_in_flight = max(self.max_calls_in_flight, self.calls_in_flight)
        try:
            # 0 to 4 ms, different per batch, so themes finish out of order.
            await asyncio.sleep((zlib.crc32("|".join(texts).encode()) % 5) / 1000)
            return await self._glove.embed(texts)
        finally:
            self.calls_in_flight -= 1
            finished = self._theme_of_last_text.get(texts[-1])
            if finished is not None:
                self.themes_in_flight.discard(finished)

    async def aclose(self) -> None:
        await self._glove.aclose()


class FailingProvider:
    """GloVe vectors, except for any batch holding `broken_text`: a fatal error, after a yield."""

    def __init__(self, index: VocabularyIndex, broken_text: str) -> None:
        self._glove = GloveProvider(index)
        self._broken_text = broken_text

    @property
    def info(self) -> ProviderInfo:
        return self._glove.info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        await asyncio.sleep(0)
        if self._broken_text in texts:
            raise FatalEmbeddingError(f"the provider refused {self._broken_text!r}")
        return await self._glove.embed(texts)

    async def aclose(self) -> None:
        return None


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@pytest.mark.asyncio
async def test_each_theme_is_embedded_and_its_candidates_ranked_by_cosine(
    glove: VocabularyIndex,
) -> None:
    outcome = await embed_and_rank(THEMES, GloveProvider(glove), max_concurrent=4, batch_size=100)

    assert outcome.failed_themes == {}
    assert list(outcome.embedded) == [theme for theme, _ in THEMES]
    for theme, candidates in THEMES:
        embedded = outcome.embedded[theme]
        assert embedded.candidate_words == tuple(candidates)
        assert embedded.candidate_vectors.shape == (len(candidates), glove.dimension)
        theme_vector = unit(np.mean([glove.vector_of(w) for w in theme.lower().split()], axis=0))
        expected = np.array([unit(glove.vector_of(word)) @ theme_vector for word in candidates])
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
    assert outcome.statistics.themes_done == len(THEMES)
    assert outcome.statistics.requests == len(THEMES)
    assert outcome.statistics.texts_embedded == sum(1 + len(c) for _, c in THEMES)


@pytest.mark.asyncio
async def test_a_theme_the_provider_refuses_is_recorded_and_the_others_finish(
    glove: VocabularyIndex,
) -> None:
    provider = FailingProvider(glove, broken_text="Metals")

    outcome = await embed_and_rank(THEMES, provider, max_concurrent=3, batch_size=100)

    assert set(outcome.failed_themes) == {"Metals"}
    assert "refused 'Metals'" in outcome.failed_themes["Metals"]
    assert set(outcome.embedded) == {theme for theme, _ in THEMES} - {"Metals"}
    assert outcome.statistics.themes_failed == 1
    assert outcome.statistics.themes_done == len(THEMES) - 1


@pytest.mark.asyncio
async def test_a_theme_glove_has_no_word_for_fails_alone(glove: VocabularyIndex) -> None:
    themes = [*THEMES[:2], ("Zzqxv Blorft", ["apple", "river"]), *THEMES[2:]]

    outcome = await embed_and_rank(themes, GloveProvider(glove), max_concurrent=2, batch_size=100)

    assert list(outcome.failed_themes) == ["Zzqxv Blorft"]
    assert "Zzqxv Blorft" in outcome.failed_themes["Zzqxv Blorft"]
    assert len(outcome.embedded) == len(THEMES)


@pytest.mark.asyncio
async def test_a_failing_candidate_batch_fails_only_its_theme(glove: VocabularyIndex) -> None:
    # The failure comes from the second request of the theme, after the first succeeded.
    provider = FailingProvider(glove, broken_text="cherry")

    outcome = await embed_and_rank(THEMES, provider, max_concurrent=6, batch_size=3)

    assert set(outcome.failed_themes) == {"Fruit"}
    assert len(outcome.embedded) == len(THEMES) - 1


@pytest.mark.parametrize("max_concurrent", [1, 3, 7])
@pytest.mark.asyncio
async def test_themes_in_flight_never_exceed_max_concurrent(
    glove: VocabularyIndex, max_concurrent: int
) -> None:
    themes = many_themes(glove, 24)
    provider = RecordingProvider(glove, themes)

    outcome = await embed_and_rank(themes, provider, max_concurrent, batch_size=3)

    assert len(outcome.embedded) == 24
    assert provider.max_themes_in_flight == max_concurrent
    assert provider.max_calls_in_flight == max_concurrent


@pytest.mark.asyncio
async def test_a_limit_above_the_theme_count_runs_every_theme_at_once(
    glove: VocabularyIndex,
) -> None:
    provider = RecordingProvider(glove, THEMES)

    outcome = await embed_and_rank(THEMES, provider, max_concurrent=50, batch_size=100)

    assert len(outcome.embedded) == len(THEMES)
    assert provider.max_themes_in_flight == len(THEMES)


@pytest.mark.asyncio
async def test_texts_are_split_into_requests_of_at_most_batch_size(glove: VocabularyIndex) -> None:
    theme, candidates = THEMES[0]  # the theme and 8 candidates: 9 texts
    provider = RecordingProvider(glove, [(theme, candidates)])

    outcome = await embed_and_rank([(theme, candidates)], provider, max_concurrent=4, batch_size=4)

    assert [len(batch) for batch in provider.batches] == [4, 4, 1]
    assert [text for batch in provider.batches for text in batch] == [theme, *candidates]
    assert outcome.statistics.requests == 3
    assert outcome.statistics.texts_embedded == 9
    whole = await embed_and_rank([(theme, candidates)], GloveProvider(glove), 4, batch_size=100)
    np.testing.assert_array_equal(
        outcome.embedded[theme].candidate_vectors, whole.embedded[theme].candidate_vectors
    )
    np.testing.assert_array_equal(
        outcome.embedded[theme].theme_vector, whole.embedded[theme].theme_vector
    )
    assert outcome.embedded[theme].ranked == whole.embedded[theme].ranked


@pytest.mark.asyncio
async def test_every_request_holds_at_most_batch_size_texts(glove: VocabularyIndex) -> None:
    themes = many_themes(glove, 12)
    provider = RecordingProvider(glove, themes)

    await embed_and_rank(themes, provider, max_concurrent=5, batch_size=2)

    assert max(len(batch) for batch in provider.batches) == 2
    sent = sorted(text for batch in provider.batches for text in batch)
    assert sent == sorted(text for theme, cands in themes for text in [theme, *cands])


async def run_with(glove: VocabularyIndex, max_concurrent: int) -> EnhanceOutcome:
    themes = [*many_themes(glove, 18), ("Zzqxv Blorft", ["apple"])]
    return await embed_and_rank(themes, RecordingProvider(glove, themes), max_concurrent, 3)


@pytest.mark.asyncio
async def test_results_are_the_same_whatever_max_concurrent(glove: VocabularyIndex) -> None:
    one = await run_with(glove, 1)
    sixteen = await run_with(glove, 16)

    assert one.failed_themes == sixteen.failed_themes
    assert set(one.embedded) == set(sixteen.embedded)
    for theme, embedded in one.embedded.items():
        other = sixteen.embedded[theme]
        assert embedded.ranked == other.ranked
        assert embedded.candidate_words == other.candidate_words
        np.testing.assert_array_equal(embedded.theme_vector, other.theme_vector)
        np.testing.assert_array_equal(embedded.candidate_vectors, other.candidate_vectors)
        np.testing.assert_array_equal(embedded.candidate_scores, other.candidate_scores)
    assert one.statistics.requests == sixteen.statistics.requests
    assert one.statistics.texts_embedded == sixteen.statistics.texts_embedded


@pytest.mark.asyncio
async def test_embedded_themes_keep_the_input_order_whatever_finishes_first(
    glove: VocabularyIndex,
) -> None:
    # The all-embeddings table and the per-theme analysis are written in this order.
    one = await run_with(glove, 1)
    sixteen = await run_with(glove, 16)

    assert list(one.embedded) == [theme for theme, _ in many_themes(glove, 18)]
    assert list(sixteen.embedded) == list(one.embedded)


@pytest.mark.asyncio
async def test_no_themes_give_an_empty_outcome(glove: VocabularyIndex) -> None:
    outcome = await embed_and_rank([], GloveProvider(glove), max_concurrent=8, batch_size=100)

    assert outcome.embedded == {}
    assert outcome.failed_themes == {}
    assert outcome.statistics.requests == 0
