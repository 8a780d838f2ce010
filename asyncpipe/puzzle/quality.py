"""The quality checks around the scorer: what it is given, and the bar it is held to.

Pure: `puzzle_arrays` gathers a puzzle's word and theme vectors (compact float32,
grid order) for `asyncpipe.run.scoring_pool`; `closer_elsewhere_in` is the
assembly's test for a word that sits closer to another theme, and `word_vectors_in`
the selection's view of the vectors; `below_bar` says
whether a score fails `params.quality`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from asyncpipe.puzzle.assembly import Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.puzzle.selection import CloserElsewhere, WordVectors
from asyncpipe.puzzle.vectors import norm_floor, unit
from asyncpipe.settings.sections import Quality


def puzzle_arrays(
    puzzle: Puzzle, embedded: Mapping[str, EmbeddedTheme]
) -> tuple[np.ndarray, np.ndarray]:
    """(words x D, themes x D) float32 vectors of one puzzle, words in grid order."""
    vectors = word_vectors_in(embedded)
    words = np.concatenate([vectors(group.theme, group.words) for group in puzzle.groups])
    themes = [embedded[group.theme].theme_vector for group in puzzle.groups]
    return np.asarray(words, dtype=np.float32), np.asarray(themes, dtype=np.float32)


def word_vectors_in(embedded: Mapping[str, EmbeddedTheme]) -> WordVectors:
    """The selection's view of the vectors: (theme, words) -> words x D, in that order."""

    def vectors(theme: str, words: Sequence[str]) -> np.ndarray:
        result = embedded[theme]
        return np.asarray(result.candidate_vectors[[result.row_of(word) for word in words]])

    return vectors


def closer_elsewhere_in(embedded: Mapping[str, EmbeddedTheme]) -> CloserElsewhere:
    """The assembly's test: is `word` (a candidate of `own`) closer to `other` than to `own`?

    Both sides are cosines of the provider's vectors, the same the ranking used.
    """
    units: dict[str, np.ndarray] = {}

    def unit_theme(theme: str) -> np.ndarray:
        if theme not in units:
            units[theme] = unit(embedded[theme].theme_vector, np.float64)
        return units[theme]

    def check(word: str, own: str, other: str) -> bool:
        result = embedded[own]
        row = result.row_of(word)
        vector = result.candidate_vectors[row].astype(np.float64)
        # Dot product first, then the word's norm: the order these verdicts were
        # always computed in (a near tie can fall either way under another order).
        length = max(float(np.linalg.norm(vector)), float(norm_floor(np.float64)))
        to_other = float(vector @ unit_theme(other)) / length
        return to_other > float(result.candidate_scores[row])

    return check


def below_bar(score: PuzzleScore, bar: Quality) -> bool:
    """The puzzle is too hard for the bar, or (with `reject_ambiguous`) ambiguous."""
    return score.difficulty > bar.max_difficulty or (bar.reject_ambiguous and score.ambiguous)
