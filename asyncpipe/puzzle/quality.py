"""From assembled puzzles to what the scorer needs, and from scores to the quality report.

Pure: `puzzle_arrays` gathers a puzzle's word and theme vectors (compact float32,
grid order) for `asyncpipe.run.scoring_pool`; `quality_report` summarises the scores
of a batch for `reports/puzzle_quality.json`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from asyncpipe.puzzle.assembly import CloserElsewhere, Puzzle
from asyncpipe.settings.sections import Quality
from asyncpipe.io.documents import distribution
from asyncpipe.stages.embed import EmbeddedTheme
from asyncpipe.puzzle.scoring import PuzzleScore


def puzzle_arrays(
    puzzle: Puzzle, embedded: Mapping[str, EmbeddedTheme]
) -> tuple[np.ndarray, np.ndarray]:
    """(words x D, themes x D) float32 vectors of one puzzle, words in grid order."""
    word_rows: list[np.ndarray] = []
    theme_rows: list[np.ndarray] = []
    for group in puzzle.groups:
        result = embedded[group.theme]
        word_rows.extend(result.candidate_vectors[result.row_of(word)] for word in group.words)
        theme_rows.append(result.theme_vector)
    return (
        np.asarray(word_rows, dtype=np.float32),
        np.asarray(theme_rows, dtype=np.float32),
    )


def closer_elsewhere_in(embedded: Mapping[str, EmbeddedTheme]) -> CloserElsewhere:
    """The assembly's test: is `word` (a candidate of `own`) closer to `other` than to `own`?

    Both sides are cosines of the provider's vectors, the same the ranking used.
    """
    units: dict[str, np.ndarray] = {}

    def unit_theme(theme: str) -> np.ndarray:
        if theme not in units:
            vector = embedded[theme].theme_vector.astype(np.float64)
            units[theme] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return units[theme]

    def check(word: str, own: str, other: str) -> bool:
        result = embedded[own]
        row = result.row_of(word)
        vector = result.candidate_vectors[row].astype(np.float64)
        to_other = float(vector @ unit_theme(other)) / max(float(np.linalg.norm(vector)), 1e-12)
        return to_other > float(result.candidate_scores[row])

    return check


def quality_report(
    scores: Sequence[PuzzleScore],
    below_bar: Sequence[bool] = (),
    rebuilt: int = 0,
    bar: Quality | None = None,
) -> dict[str, Any]:
    """Distributions and counts over a batch's puzzle scores."""
    return {
        "quality_bar": bar.model_dump() if bar is not None else None,
        "below_quality_bar": sum(below_bar),
        "puzzles_scored": len(scores),
        "solver_recovers_intended_grouping": sum(score.solver_optimal for score in scores),
        "ambiguous": sum(score.ambiguous for score in scores),
        "with_misplaced_words": sum(bool(score.misplaced_words) for score in scores),
        "with_textual_look_alikes": sum(bool(score.textual_pairs) for score in scores),
        "rebuilt": rebuilt,
        "difficulty": distribution([score.difficulty for score in scores]),
        "solver_margin": distribution([score.solver_margin for score in scores]),
        "mean_silhouette": distribution([score.mean_silhouette for score in scores]),
        "separation": distribution([score.separation for score in scores]),
        "textual_penalty": distribution([score.textual_penalty for score in scores]),
    }
