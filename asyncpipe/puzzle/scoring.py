"""Score an assembled puzzle: how tight its groups are, how well they separate, and
whether the embedding solver (`asyncpipe.puzzle.solver`) recovers the intended grouping.

Pure numpy and the standard library, no I/O: `score_puzzle` is meant to run in a
process-pool worker (forkserver or spawn), so it takes float32 arrays and returns
a small frozen `PuzzleScore` of plain Python values that pickles and turns into
JSON.

Not here: choosing words or themes (assembly), ranking candidates (ranking), or
deciding what to do with a poor score (`asyncpipe.puzzle.quality`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from asyncpipe.puzzle.difficulty import (
    group_closeness,
    group_ease,
    group_levels,
    puzzle_level,
)
from asyncpipe.puzzle.lexicon import is_wordplay_theme
from asyncpipe.puzzle.lookalikes import textual_pairs, textual_penalty
from asyncpipe.puzzle.solver import (
    DEFAULT_AMBIGUITY_MARGIN,
    Split,
    best_splits,
    solver_difficulty,
    solver_verdict,
)
from asyncpipe.puzzle.vectors import unit_rows


@dataclass(frozen=True)
class PuzzleScore:
    """Every figure for one puzzle, in plain Python types. Words are in grid order.

    Per group (one value per group): `coherence`, the mean pairwise cosine of the
    group's words; `theme_fit`, the mean cosine of its words to its own theme.

    Overall: `separation`, the mean within-group pairwise cosine minus the mean
    between-group one; `silhouette`, one value per word (cosine distance
    d = 1 - cos; a = mean d to the word's own group, b = the lowest mean d to
    another group, s = (b - a) / max(a, b), 0 when both are 0), and its mean;
    `misplaced_words`, the words closer to another theme of the puzzle than to
    their own.

    Textual: `textual_pairs`, any two words of the grid that look alike, as
    (i, j, reason) with i < j; `textual_penalty` = 1 - (1 - 0.25) ** len(pairs),
    0 with no pair, 0.25 with one, 0.44 with two, towards 1.

    Solver (total = sum over groups of the pairwise cosines inside the group):
    `solver_optimal`, the intended split has the highest total of all splits
    (a tie counts as optimal); `solver_margin`, the intended total minus the best
    total of any other split, negative when another split beats it;
    `solver_best_groups`, the best split (the intended one when optimal), each
    group sorted, groups ordered by their first word; `difficulty` in [0, 1] and
    `ambiguous`, see `solver_difficulty`.

    Difficulty levels (`asyncpipe.puzzle.difficulty`): `closeness`, per group, the
    highest mean cosine between its words and another group's; `group_ease`, per
    group, the figure its level is ranked by. Both are empty in a score recorded
    before they were measured (a checkpoint of an older run): such a score is
    measured again, never shown without them (`has_group_figures`).
    `wordplay_groups`, the positions of the puzzle's wordplay groups, which rank
    hardest whatever their ease: the scorer sees only vectors, so the caller that
    knows the themes sets them (`with_wordplay`).
    """

    coherence: tuple[float, ...]
    theme_fit: tuple[float, ...]
    separation: float
    silhouette: tuple[float, ...]
    mean_silhouette: float
    misplaced_words: tuple[int, ...]
    textual_pairs: tuple[tuple[int, int, str], ...]
    textual_penalty: float
    solver_optimal: bool
    solver_margin: float
    solver_best_groups: Split
    difficulty: float
    ambiguous: bool
    # Defaults last: a score recorded without them still reads back, as incomplete.
    closeness: tuple[float, ...] = ()
    group_ease: tuple[float, ...] = ()
    wordplay_groups: tuple[int, ...] = ()

    def with_wordplay(self, themes: Sequence[str]) -> PuzzleScore:
        """This score with the wordplay groups among `themes` (the puzzle's, in order)."""
        groups = tuple(i for i, theme in enumerate(themes) if is_wordplay_theme(theme))
        return dataclasses.replace(self, wordplay_groups=groups) if groups else self

    @property
    def has_group_figures(self) -> bool:
        """Whether the per-group difficulty figures were measured (one per group)."""
        groups = len(self.coherence)
        return len(self.closeness) == groups and len(self.group_ease) == groups

    @property
    def group_levels(self) -> tuple[int, ...]:
        """Per group, its level from 1 (yellow, easiest) to 4 (purple), ranked by ease."""
        return group_levels(self.group_ease, self.wordplay_groups)

    @property
    def puzzle_level(self) -> int:
        """The puzzle's level from 1 (easy) to 4 (expert), from `difficulty` and `ambiguous`."""
        return puzzle_level(self.difficulty, self.ambiguous)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: lists for tuples, floats rounded to 6 decimals."""
        return {
            "coherence": _rounded(self.coherence),
            "theme_fit": _rounded(self.theme_fit),
            "separation": round(self.separation, 6),
            "silhouette": _rounded(self.silhouette),
            "mean_silhouette": round(self.mean_silhouette, 6),
            "misplaced_words": list(self.misplaced_words),
            "textual_pairs": [[i, j, reason] for i, j, reason in self.textual_pairs],
            "textual_penalty": round(self.textual_penalty, 6),
            "solver_optimal": self.solver_optimal,
            "solver_margin": round(self.solver_margin, 6),
            "solver_best_groups": [list(group) for group in self.solver_best_groups],
            "difficulty": round(self.difficulty, 6),
            "ambiguous": self.ambiguous,
            "closeness": _rounded(self.closeness),
            "group_ease": _rounded(self.group_ease),
        } | ({"wordplay_groups": list(self.wordplay_groups)} if self.wordplay_groups else {})


def score_puzzle(
    word_vectors: np.ndarray,
    theme_vectors: np.ndarray,
    words: Sequence[str],
    group_size: int = 4,
    ambiguity_margin: float = DEFAULT_AMBIGUITY_MARGIN,
    variant_keys: Sequence[str] | None = None,
) -> PuzzleScore:
    """Score a puzzle whose word i belongs to group i // group_size (theme row i // group_size).

    `word_vectors` is (groups * group_size, D), `theme_vectors` (groups, D); neither
    needs to be normalised. Raises ValueError when the shapes do not fit together.
    `variant_keys`: the words' keys for the look-alike check (`textual_pairs`), when
    the caller has them.
    """
    words_unit = _unit_rows(word_vectors, "word_vectors")
    themes_unit = _unit_rows(theme_vectors, "theme_vectors")
    groups = themes_unit.shape[0]
    items = words_unit.shape[0]
    if groups < 2 or group_size < 2:
        raise ValueError(
            f"a puzzle needs at least 2 groups of 2 words, got {groups} x {group_size}"
        )
    if items != groups * group_size:
        raise ValueError(
            f"{items} word vectors do not make {groups} groups of {group_size} "
            f"(one theme vector per group)"
        )
    if themes_unit.shape[1] != words_unit.shape[1]:
        raise ValueError(
            f"word vectors have {words_unit.shape[1]} dimensions, "
            f"theme vectors {themes_unit.shape[1]}"
        )
    if len(words) != items:
        raise ValueError(f"{len(words)} words for {items} word vectors")

    similarity = words_unit @ words_unit.T
    to_themes = words_unit @ themes_unit.T  # (items, groups)
    membership = np.arange(items) // group_size
    same_group = membership[:, None] == membership[None, :]
    upper = np.triu(np.ones((items, items), dtype=bool), k=1)

    coherence = tuple(
        float(similarity[block][:, block][np.triu_indices(group_size, k=1)].mean())
        for block in (membership == group for group in range(groups))
    )
    theme_fit = tuple(
        float(to_themes[membership == group, group].mean()) for group in range(groups)
    )
    separation = float(
        similarity[upper & same_group].mean() - similarity[upper & ~same_group].mean()
    )
    silhouette = _silhouette(similarity, membership, groups, group_size)
    own_fit = to_themes[np.arange(items), membership]
    misplaced = tuple(int(i) for i in np.flatnonzero((to_themes > own_fit[:, None]).any(axis=1)))
    closeness = group_closeness(similarity, group_size)
    ease = group_ease(similarity, to_themes, group_size, coherence, theme_fit, closeness)

    pairs = textual_pairs(words, variant_keys)
    intended: Split = tuple(
        tuple(range(group * group_size, (group + 1) * group_size)) for group in range(groups)
    )
    solved = best_splits(similarity, groups, group_size)
    optimal, margin, best = solver_verdict(solved, intended)
    difficulty, ambiguous = solver_difficulty(solved, margin, ambiguity_margin)

    return PuzzleScore(
        coherence=coherence,
        theme_fit=theme_fit,
        separation=separation,
        silhouette=tuple(float(value) for value in silhouette),
        mean_silhouette=float(silhouette.mean()),
        misplaced_words=misplaced,
        textual_pairs=pairs,
        textual_penalty=textual_penalty(len(pairs)),
        solver_optimal=optimal,
        solver_margin=margin,
        solver_best_groups=best,
        difficulty=difficulty,
        ambiguous=ambiguous,
        closeness=closeness,
        group_ease=ease,
    )


# --- the embedding figures -------------------------------------------------------------


def _unit_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit length in float64; an all-zero row stays zero (cosine 0)."""
    if np.ndim(vectors) != 2:
        raise ValueError(f"{name} must be 2-D (rows of vectors), got shape {np.shape(vectors)}")
    return unit_rows(vectors, np.float64)


def _silhouette(
    similarity: np.ndarray, membership: np.ndarray, groups: int, size: int
) -> np.ndarray:
    distance = 1.0 - similarity
    np.fill_diagonal(distance, 0.0)  # a word is no distance from itself, whatever its norm
    one_hot = membership[:, None] == np.arange(groups)[None, :]
    sums = distance @ one_hot  # (items, groups): distance from each word to each group
    rows = np.arange(len(membership))
    own = sums[rows, membership] / (size - 1)
    to_others = sums / size
    to_others[rows, membership] = np.inf
    nearest = to_others.min(axis=1)
    widest = np.maximum(own, nearest)
    result: np.ndarray = np.where(
        widest > 0.0, (nearest - own) / np.where(widest > 0.0, widest, 1.0), 0.0
    )
    return result


# --- the textual figures ---------------------------------------------------------------


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(value, 6) for value in values]
