"""From assembled puzzles to what the scorer needs, and from scores to the quality report.

Pure: `puzzle_arrays` gathers a puzzle's word and theme vectors (compact float32,
grid order) for `asyncpipe.scoring_pool`; `quality_report` summarises the scores
of a batch for `reports/puzzle_quality.json`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from asyncpipe.assembly import Puzzle
from asyncpipe.enhance import EmbeddedTheme
from asyncpipe.scoring import PuzzleScore


def puzzle_arrays(
    puzzle: Puzzle, embedded: Mapping[str, EmbeddedTheme]
) -> tuple[np.ndarray, np.ndarray]:
    """(words x D, themes x D) float32 vectors of one puzzle, words in grid order."""
    word_rows: list[np.ndarray] = []
    theme_rows: list[np.ndarray] = []
    for group in puzzle.groups:
        result = embedded[group.theme]
        row_of_word = dict(zip(result.ranked.words, result.ranked.source_rows, strict=True))
        word_rows.extend(result.candidate_vectors[row_of_word[word]] for word in group.words)
        theme_rows.append(result.theme_vector)
    return (
        np.asarray(word_rows, dtype=np.float32),
        np.asarray(theme_rows, dtype=np.float32),
    )


def quality_report(scores: Sequence[PuzzleScore]) -> dict[str, Any]:
    """Distributions and counts over a batch's puzzle scores."""
    return {
        "puzzles_scored": len(scores),
        "solver_recovers_intended_grouping": sum(score.solver_optimal for score in scores),
        "ambiguous": sum(score.ambiguous for score in scores),
        "with_misplaced_words": sum(bool(score.misplaced_words) for score in scores),
        "with_textual_look_alikes": sum(bool(score.textual_pairs) for score in scores),
        "rebuilt": 0,
        "difficulty": _distribution([score.difficulty for score in scores]),
        "solver_margin": _distribution([score.solver_margin for score in scores]),
        "mean_silhouette": _distribution([score.mean_silhouette for score in scores]),
        "separation": _distribution([score.separation for score in scores]),
        "textual_penalty": _distribution([score.textual_penalty for score in scores]),
    }


def _distribution(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "count": int(array.size),
        "mean": round(float(array.mean()), 6),
        "min": round(float(array.min()), 6),
        "p10": round(float(np.percentile(array, 10)), 6),
        "median": round(float(np.median(array)), 6),
        "p90": round(float(np.percentile(array, 90)), 6),
        "max": round(float(array.max()), 6),
    }
