"""The JSON documents and embedding tables of the enhance stage, built from its results.

Pure: these functions shape data and return it; `asyncpipe.outputs` writes it.
`final_puzzles.json` holds only what the same params and seed always produce
(no timings, no counters), so it is byte-identical from run to run; everything
that varies goes into `puzzle_metadata.json`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from asyncpipe.assembly import Puzzle
from asyncpipe.enhance import EmbeddedTheme
from asyncpipe.outputs import EmbeddingRows

#: Decimal places of similarity scores in the JSON outputs: enough to rank, and
#: few enough that last-bit differences between machines rarely show.
SCORE_DECIMALS = 6


def final_puzzles_document(puzzles: Iterable[Puzzle], include_scores: bool) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for number, puzzle in enumerate(puzzles, start=1):
        entry: dict[str, Any] = {"words": puzzle.words, "themes": puzzle.themes}
        if include_scores:
            entry["theme_similarity_scores"] = [
                round(score, SCORE_DECIMALS) for score in puzzle.scores
            ]
        document[f"puzzle_{number}"] = entry
    return document


def embedding_analysis_document(
    embedded: Mapping[str, EmbeddedTheme], puzzles: Iterable[Puzzle], provider: Mapping[str, Any]
) -> dict[str, Any]:
    """Similarity statistics of all candidates and of the words the puzzles use."""
    all_scores = np.fromiter(
        (score for theme in embedded.values() for score in theme.ranked.scores), dtype=np.float64
    )
    puzzle_scores = np.fromiter(
        (score for puzzle in puzzles for score in puzzle.scores), dtype=np.float64
    )
    per_theme = {
        theme: _summary(np.asarray(result.ranked.scores, dtype=np.float64))
        for theme, result in embedded.items()
    }
    theme_norms = [float(np.linalg.norm(result.theme_vector)) for result in embedded.values()]
    return {
        "provider": dict(provider),
        "candidate_similarity": _summary(all_scores),
        "puzzle_word_similarity": _summary(puzzle_scores),
        "per_theme_similarity": per_theme,
        "embedding_summary": {
            "themes_embedded": len(embedded),
            "candidate_vectors": int(
                sum(len(result.candidate_words) for result in embedded.values())
            ),
            "dimension": int(provider.get("dimension", 0)),
            "theme_vector_norm": _summary(np.asarray(theme_norms, dtype=np.float64)),
        },
    }


def all_embeddings_rows(embedded: Mapping[str, EmbeddedTheme]) -> EmbeddingRows:
    """Every text the run embedded: each theme (rank 0), then its candidates by rank."""
    themes: list[str] = []
    words: list[str] = []
    types: list[str] = []
    similarities: list[float] = []
    ranks: list[int] = []
    blocks: list[np.ndarray] = []
    for theme, result in embedded.items():
        themes.append(theme)
        words.append(theme)
        types.append("theme")
        similarities.append(1.0)
        ranks.append(0)
        blocks.append(result.theme_vector[np.newaxis, :])
        rank_of = {row: rank for rank, row in enumerate(result.ranked.source_rows, start=1)}
        for row, word in enumerate(result.candidate_words):
            themes.append(theme)
            words.append(word)
            # Variants dropped from the ranking are still embedded texts: keep them, unranked.
            rank = rank_of.get(row, -1)
            types.append("candidate" if rank > 0 else "variant")
            similarities.append(float(result.candidate_scores[row]))
            ranks.append(rank)
        blocks.append(result.candidate_vectors)
    return EmbeddingRows(themes, words, types, similarities, ranks, _stack(blocks))


def puzzle_embeddings_rows(
    puzzles: Iterable[Puzzle], embedded: Mapping[str, EmbeddedTheme]
) -> EmbeddingRows:
    """The words of the puzzles only, one row per word per puzzle, in grid order."""
    themes: list[str] = []
    words: list[str] = []
    types: list[str] = []
    similarities: list[float] = []
    ranks: list[int] = []
    blocks: list[np.ndarray] = []
    for number, puzzle in enumerate(puzzles, start=1):
        for group in puzzle.groups:
            result = embedded[group.theme]
            rank_of_word = {word: rank for rank, word in enumerate(result.ranked.words, start=1)}
            row_of_word = dict(zip(result.ranked.words, result.ranked.source_rows, strict=True))
            for word, score in zip(group.words, group.scores, strict=True):
                themes.append(group.theme)
                words.append(word)
                types.append(f"puzzle_{number}")
                similarities.append(score)
                ranks.append(rank_of_word[word])
                blocks.append(result.candidate_vectors[row_of_word[word]][np.newaxis, :])
    return EmbeddingRows(themes, words, types, similarities, ranks, _stack(blocks))


def _stack(blocks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)


def _summary(values: np.ndarray) -> dict[str, float | int]:
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), SCORE_DECIMALS),
        "std": round(float(values.std()), SCORE_DECIMALS),
        "min": round(float(values.min()), SCORE_DECIMALS),
        "p25": round(float(np.percentile(values, 25)), SCORE_DECIMALS),
        "median": round(float(np.median(values)), SCORE_DECIMALS),
        "p75": round(float(np.percentile(values, 75)), SCORE_DECIMALS),
        "max": round(float(values.max()), SCORE_DECIMALS),
    }
