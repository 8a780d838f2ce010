"""Stage 2: the nearest puzzle-worthy words to each theme in a vocabulary index.

A theme's vector is the mean of its words' vectors (stopwords left out when
the theme has other words), so "Musical instruments" searches near both. The
search runs over the index's most frequent words that could sit on a grid
(`asyncpipe.puzzle.words.is_puzzle_word`), leaves out the theme's own words and their
forms, and can collapse words sharing a stem to the closest of them. A theme
none of whose words the index knows is reported as failed, to be replaced by
a spare later; it never stops the stage.

This module searches; it does not embed with the configured provider (that is
the enhance stage, `asyncpipe.stages.embed`) and does not read or write files.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.vectors import unit_rows
from asyncpipe.puzzle.words import is_puzzle_word, theme_variants, variant_key
from asyncpipe.settings.sections import Candidates, PuzzleGeneration, VectorSearch

#: Where a theme's candidates came from.
CandidateSource = Literal["members", "neighbours"]

#: Themes scored against the pool in one matrix product; bounds the memory of a chunk.
_THEMES_PER_CHUNK = 64


@dataclass(frozen=True)
class ThemeCandidates:
    """A theme's candidates: its category's members, or its neighbours with their cosines.

    Members carry no similarity score here: nothing has embedded them yet, and the
    provider's cosines come in the enhance stage.

    The scores are held as one array of doubles, whatever sequence they were given
    as: a run keeps every theme's candidates until its outputs are written, and as a
    tuple of Python floats they were 32 bytes a score where the array takes 8 (about
    13 MB for the 10,000 themes of 2,000 puzzles, 65 MB for 10,000 puzzles).
    """

    words: tuple[str, ...]
    similarity_scores: Sequence[float] = ()
    source: CandidateSource = "neighbours"
    #: The lexicon category the theme names (members only): "Trees" for "tree".
    category: str | None = None

    def __post_init__(self) -> None:
        scores = self.similarity_scores
        if not (isinstance(scores, array) and scores.typecode == "d"):
            object.__setattr__(self, "similarity_scores", array("d", scores))

    def __hash__(self) -> int:  # the array is not hashable; its values are
        return hash((self.words, tuple(self.similarity_scores), self.source, self.category))

    def to_json(self) -> dict[str, Any]:
        if self.source == "members":
            return {
                "words": list(self.words),
                "word_count": len(self.words),
                "source": self.source,
                "category": self.category,
            }
        return {
            "words": list(self.words),
            "similarity_scores": [round(score, 6) for score in self.similarity_scores],
            "word_count": len(self.words),
        }


@dataclass(frozen=True)
class CandidateSearchResult:
    candidates: dict[str, ThemeCandidates]
    #: Themes without a candidate (NO_CANDIDATES, NOT_A_CATEGORY), in the order searched.
    failed_themes: dict[str, ThemeFailure]
    #: Words the neighbour search could draw from; None when no theme needed it.
    search_pool_size: int | None = field(default=None, compare=False)

    @property
    def categories(self) -> dict[str, str]:
        """Theme -> the lexicon category whose members it holds, for member themes."""
        return {
            theme: found.category
            for theme, found in self.candidates.items()
            if found.category is not None
        }

    def sources(self) -> dict[str, str]:
        """How each theme searched was served: members, neighbours, or replaced (a spare)."""
        served: dict[str, str] = {}
        for theme, found in self.candidates.items():
            served[theme] = found.source
        for theme, failure in self.failed_themes.items():
            # A theme the neighbour search found nothing for was still searched so.
            replaced = failure.kind is FailureKind.NOT_A_CATEGORY
            served.setdefault(theme, "replaced" if replaced else "neighbours")
        return served


def member_candidates(
    theme: str,
    category: Category,
    generation: PuzzleGeneration,
    search: VectorSearch,
    embeddable: Callable[[str], bool] | None = None,
) -> ThemeCandidates:
    """The category's members that can sit on a grid, most familiar first.

    Left out: words too short or not puzzle-worthy, forms of a word of the theme or
    of the category's name (no tile may name its group), a second form of a word
    already taken (bus, buses: the more familiar stays), and words `embeddable` says
    the provider cannot embed (an offline index without them).
    """
    names = (theme_variants(theme), theme_variants(category.name))
    taken: set[str] = set()
    words: list[str] = []
    for word in category.members:
        if not is_puzzle_word(word, search.min_word_length):
            continue
        if any(variants.covers(word) for variants in names):
            continue
        if embeddable is not None and not embeddable(word):
            continue
        key = variant_key(word)
        if key in taken:
            continue
        taken.add(key)
        words.append(word)
        if len(words) == generation.candidate_words_per_theme:
            break
    return ThemeCandidates(tuple(words), source="members", category=category.name)


def find_candidates(
    themes: list[str],
    settings: Candidates,
    search: VectorSearch,
    generation: PuzzleGeneration,
    lexicon: Lexicon,
    index: Callable[[], VocabularyIndex],
    embeddable: Callable[[str], bool] | None = None,
) -> CandidateSearchResult:
    """Every theme's candidates from the configured source, in the order given.

    `index` is called only when some theme needs the neighbour search, so a batch of
    categories never loads the vector index. `embeddable`, when given, keeps only the
    members the run's provider can embed (see `member_candidates`).
    """
    members: dict[str, ThemeCandidates] = {}
    failed: dict[str, ThemeFailure] = {}
    near: list[str] = []
    for theme in themes:
        category = lexicon.lookup(theme) if settings.source == "members" else None
        if category is not None:
            offered = member_candidates(theme, category, generation, search, embeddable)
            # A category with too few members for a group here (the provider's index
            # lacks the rest) is treated as no category at all.
            if len(offered.words) >= generation.words_per_theme:
                members[theme] = offered
                continue
        if settings.source == "members" and settings.not_a_category == "spare":
            failed[theme] = ThemeFailure(
                FailureKind.NOT_A_CATEGORY,
                "names no category of the lexicon (or one with too few members the "
                "provider can embed); replaced by a spare (candidates.not_a_category: spare)",
            )
        else:
            near.append(theme)
    found = dict(members)
    pool_size = None
    if near:
        neighbours = CandidateSearch(index(), search)
        result = neighbours.search(near, generation)
        found.update(result.candidates)
        failed.update(result.failed_themes)
        pool_size = neighbours.pool_size
    return CandidateSearchResult(
        candidates={theme: found[theme] for theme in themes if theme in found},
        failed_themes={theme: failed[theme] for theme in themes if theme in failed},
        search_pool_size=pool_size,
    )


def without_variant_duplicates(
    result: CandidateSearchResult, use_lemmatized: bool
) -> tuple[CandidateSearchResult, int]:
    """Each theme's candidates with one word per variant key, and how many were dropped.

    The first word of each key stays, in the list's own order (a neighbour list is
    closest first), with its score. The ranking would collapse the others onto one word
    anyway (`asyncpipe.puzzle.ranking.rank_candidates`); dropped here, before the
    enhance stage, they are never embedded. The search already keeps one word per key;
    this is for candidate files that did not (the older pipeline's: Dance, dance,
    dances). With `use_lemmatized` off the candidates are left as they are.
    """
    if not use_lemmatized:
        return result, 0
    dropped = 0
    candidates: dict[str, ThemeCandidates] = {}
    for theme, found in result.candidates.items():
        taken: set[str] = set()
        rows: list[int] = []
        for row, word in enumerate(found.words):
            key = variant_key(word)
            if key not in taken:
                taken.add(key)
                rows.append(row)
        if len(rows) == len(found.words):
            candidates[theme] = found
            continue
        dropped += len(found.words) - len(rows)
        scores = found.similarity_scores
        candidates[theme] = replace(
            found,
            words=tuple(found.words[row] for row in rows),
            similarity_scores=[scores[row] for row in rows] if scores else (),
        )
    if not dropped:
        return result, 0
    return replace(result, candidates=candidates), dropped


class CandidateSearch:
    """Nearest-word search over the puzzle-worthy part of one index (the neighbours source)."""

    def __init__(self, index: VocabularyIndex, settings: VectorSearch) -> None:
        self._index = index
        self._settings = settings
        pool_limit = min(settings.vocabulary_size, len(index))
        rows = [
            row
            for row, word in enumerate(index.words[:pool_limit])
            if is_puzzle_word(word, settings.min_word_length)
        ]
        self._pool_rows = np.asarray(rows, dtype=np.int64)
        self._pool_words = [index.words[row] for row in rows]
        self._pool_vectors = self._prepare(np.asarray(index.vectors[self._pool_rows]))

    @property
    def pool_size(self) -> int:
        return len(self._pool_words)

    def search(self, themes: list[str], generation: PuzzleGeneration) -> CandidateSearchResult:
        """Candidates for every theme, in the order given; unknown themes are reported."""
        failed: dict[str, ThemeFailure] = {}
        known: list[tuple[str, np.ndarray]] = []
        for theme in themes:
            vector = self._index.text_vector(theme)
            if vector is None:
                failed[theme] = ThemeFailure(
                    FailureKind.NO_CANDIDATES,
                    f"no word of the theme is in the vector index {self._index.name!r}",
                )
            else:
                known.append((theme, vector))

        candidates: dict[str, ThemeCandidates] = {}
        for start in range(0, len(known), _THEMES_PER_CHUNK):
            chunk = known[start : start + _THEMES_PER_CHUNK]
            scores = self._prepare(np.stack([vector for _, vector in chunk])) @ self._pool_vectors.T
            for (theme, _), theme_scores in zip(chunk, scores, strict=True):
                candidates[theme] = self._best_for(theme, theme_scores, generation)
        for theme, found in candidates.items():
            if not found.words:
                failed[theme] = ThemeFailure(
                    FailureKind.NO_CANDIDATES,
                    "no candidate word at or above similarity "
                    f"{generation.min_similarity_threshold}",
                )
        ordered = {theme: candidates[theme] for theme in themes if theme in candidates}
        return CandidateSearchResult(
            candidates=ordered, failed_themes=failed, search_pool_size=self.pool_size
        )

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        if self._settings.similarity_metric == "cosine":
            return unit_rows(vectors, np.float32)
        return np.asarray(vectors, dtype=np.float32)

    def _best_for(
        self, theme: str, scores: np.ndarray, generation: PuzzleGeneration
    ) -> ThemeCandidates:
        """Walk the pool from the nearest word outwards until the search is full."""
        wanted = self._settings.max_search_candidates
        threshold = generation.min_similarity_threshold
        found_words: list[str] = []
        found_scores: list[float] = []
        seen_stems: set[str] = set()
        variants = theme_variants(theme)
        # Most theme neighbours pass the filters, so a partial sort of a few times
        # the wanted count nearly always suffices; the full sort is the fallback.
        for window in (wanted * 4, len(scores)):
            found_words.clear()
            found_scores.clear()
            seen_stems.clear()
            for position in _top_positions(scores, window):
                score = float(scores[position])
                if score < threshold or len(found_words) == wanted:
                    return self._cut(found_words, found_scores, generation)
                word = self._pool_words[position]
                if variants.covers(word):
                    continue
                if self._settings.use_lemmatized:
                    stem = variant_key(word)
                    if stem in seen_stems:
                        continue
                    seen_stems.add(stem)
                found_words.append(word)
                found_scores.append(score)
            if window >= len(scores):
                break
        return self._cut(found_words, found_scores, generation)

    @staticmethod
    def _cut(
        words: list[str], scores: list[float], generation: PuzzleGeneration
    ) -> ThemeCandidates:
        keep = generation.candidate_words_per_theme
        return ThemeCandidates(words=tuple(words[:keep]), similarity_scores=scores[:keep])


def _top_positions(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` highest scores, best first; ties by position."""
    count = min(count, len(scores))
    if count < len(scores):
        part = np.argpartition(-scores, count - 1)[:count]
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]
