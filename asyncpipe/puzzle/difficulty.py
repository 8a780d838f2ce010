"""How hard each group and each puzzle is, as levels a puzzle app can show.

Groups get a level from 1 to 4, the colours of the app: 1 yellow (the easiest),
2 green, 3 blue, 4 purple (the hardest). The level comes from a measured
`ease` figure, ranked within the puzzle:

    ease = (coherence - closeness) / spread_words + (theme_fit - off_theme) / spread_themes

- `coherence`: the mean pairwise cosine inside the group;
- `closeness`: the highest mean cosine between the group's words and the words
  of one other group of the puzzle (the group a player confuses it with);
- `theme_fit`: the mean cosine of the group's words to its own theme;
- `off_theme`: the mean cosine of the puzzle's words to the other themes;
- `spread_words`, `spread_themes`: the standard deviation of the puzzle's
  word-to-word cosines (every pair) and of its word-to-theme cosines.

Each term is a difference of two cosines of one kind divided by their spread
in the same puzzle, so ease does not move when every cosine is shifted or
scaled alike: GloVe 50d and Gemini 3072d, whose baseline cosines differ a lot,
rank the same grid the same way. A tight group far from the others, whose words
sit close to their theme, is easy; one next to another group is hard. A spread
of 0 (every cosine alike) makes its term 0: nothing tells the groups apart.

The groups are ranked by ease, highest first, compared at the 6 decimals the
outputs show; equal eases go by group position (the earlier group is easier),
so a tie never depends on the last bit of a float. Rank r of n groups gets
level 1 + round(3 r / (n - 1)), halves rounded up: the easiest group is always
yellow and the hardest purple, the rest evenly between. Four groups get one of
each level; 2 groups are 1, 4; 3 are 1, 3, 4; 5 are 1, 2, 3, 3, 4; 8 are two of each.

A wordplay group ("FIRE ___") is ranked after every other group, whatever its
ease: its words are linked by spelling, which no embedding measures, and a player
finds it last, so it is the purple one and the others shift down a level.

A puzzle gets a level from the solver's `difficulty` in [0, 1]
(`asyncpipe.puzzle.solver.solver_difficulty`: 1 - margin / the margin of ideal
clusters): 1 easy below 0.4, 2 medium below 0.6, 3 hard below 0.8, 4 expert
from 0.8, and always expert when the solver calls it ambiguous (another split
comes within the ambiguity margin). Both figures rise as the margin falls, so
the level never drops as the margin shrinks.

Pure numpy and the standard library, no I/O. Not here: the solver itself, or
what to do with a hard puzzle (`asyncpipe.puzzle.quality`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

#: The colour of each group level, from 1 (easiest) to 4 (hardest).
GROUP_COLORS = ("yellow", "green", "blue", "purple")
#: The label of each puzzle level, from 1 to 4.
PUZZLE_LABELS = ("easy", "medium", "hard", "expert")
#: Solver difficulty at which a puzzle reaches level 2, 3 and 4.
PUZZLE_LEVEL_CUTS = (0.4, 0.6, 0.8)

LEVELS = len(GROUP_COLORS)
#: Eases are compared as the outputs show them, so ties are ties on every machine.
_EASE_DECIMALS = 6
#: A spread this small is rounding noise on cosines that are all alike.
_NO_SPREAD = 1e-12


def group_closeness(similarity: np.ndarray, group_size: int) -> tuple[float, ...]:
    """Per group, the highest mean cosine between its words and another group's words.

    `similarity` is the (n, n) word cosine matrix in grid order, word i in group
    i // group_size.
    """
    groups = similarity.shape[0] // group_size
    blocks = similarity.reshape(groups, group_size, groups, group_size).mean(axis=(1, 3))
    np.fill_diagonal(blocks, -np.inf)
    return tuple(float(value) for value in blocks.max(axis=1))


def group_ease(
    similarity: np.ndarray,
    to_themes: np.ndarray,
    group_size: int,
    coherence: Sequence[float],
    theme_fit: Sequence[float],
    closeness: Sequence[float],
) -> tuple[float, ...]:
    """The ease of each group (see the module docstring), higher is easier.

    `similarity` is the (n, n) word cosine matrix, `to_themes` the (n, groups)
    word-to-theme cosines, both in grid order; the per-group figures are those
    `score_puzzle` measured on them.
    """
    items, groups = to_themes.shape
    pairs = similarity[np.triu_indices(items, k=1)]
    own_theme = (np.arange(items) // group_size)[:, None] == np.arange(groups)[None, :]
    off_theme = float(to_themes[~own_theme].mean())
    spread_words = _spread(pairs)
    spread_themes = _spread(to_themes)
    return tuple(
        _scaled(inside - nearest, spread_words) + _scaled(fit - off_theme, spread_themes)
        for inside, nearest, fit in zip(coherence, closeness, theme_fit, strict=True)
    )


def group_levels(ease: Sequence[float], hardest: Collection[int] = ()) -> tuple[int, ...]:
    """The level (1 yellow .. 4 purple) of each group, in group order, from its ease;
    the groups of `hardest` (wordplay groups, by position) rank last."""
    order = sorted(
        range(len(ease)),
        key=lambda group: (group in hardest, -round(ease[group], _EASE_DECIMALS), group),
    )
    by_rank = levels_by_rank(len(ease))
    levels = [0] * len(ease)
    for rank, group in enumerate(order):
        levels[group] = by_rank[rank]
    return tuple(levels)


def levels_by_rank(groups: int) -> tuple[int, ...]:
    """The level of each rank, easiest first: 1 + round(3 r / (groups - 1)), halves up."""
    if groups < 2:
        return (1,) * groups
    steps = LEVELS - 1
    return tuple(
        1 + (2 * steps * rank + groups - 1) // (2 * (groups - 1)) for rank in range(groups)
    )


def puzzle_level(difficulty: float, ambiguous: bool) -> int:
    """The puzzle's level, 1 easy .. 4 expert, from the solver's difficulty in [0, 1]."""
    if ambiguous:
        return LEVELS
    return 1 + sum(difficulty >= cut for cut in PUZZLE_LEVEL_CUTS)


def group_color(level: int) -> str:
    return GROUP_COLORS[level - 1]


def puzzle_label(level: int) -> str:
    return PUZZLE_LABELS[level - 1]


def _spread(cosines: np.ndarray) -> float:
    return float(np.std(cosines))


def _scaled(difference: float, spread: float) -> float:
    return difference / spread if spread > _NO_SPREAD else 0.0
