"""What the review page shows of a batch, as frozen values built from the run's results.

Pure: `review_puzzles` turns the assembled puzzles, their scores and the vectors
into `ReviewPuzzle`s (the player's shuffled grid, the solution by level, the
solver's verdict, the 16x16 cosine matrix rounded for display), and
`BatchFigures` carries the batch-wide counts the summary charts draw. The page
itself is `asyncpipe.io.review_page`; this module decides what it says, not
how it looks. Everything here is a function of the params, the seed and the
vectors, so the page is byte-identical from run to run.

A tile's `decoy_for` names the other theme a red herring pretends to belong to
(`Puzzle.decoys`, placed by the assembly); the page marks it in the grid and the
solution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from asyncpipe.io.puzzle_sets import shuffled_tiles
from asyncpipe.puzzle.assembly import Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.failures import ThemeFailure
from asyncpipe.puzzle.quality import puzzle_arrays
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.puzzle.vectors import unit_rows

#: Decimal places of the cosines the heatmap shows: a colour and a tooltip need no more.
SIMILARITY_DECIMALS = 2
#: Shuffles tried before giving up on keeping every group out of a single row.


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile of the grid: its word, the group it belongs to (index into the groups),
    and the other theme it is a red herring for, when it is one."""

    word: str
    group: int
    decoy_for: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewGroup:
    theme: str
    words: tuple[str, ...]
    #: 1 (yellow, easiest) .. 4 (purple), `asyncpipe.puzzle.difficulty`.
    level: int


@dataclass(frozen=True, slots=True)
class ReviewPuzzle:
    """One puzzle as an editor reviews it. `groups` run from the easiest level to the
    hardest; `similarity` follows them word by word, so each group is a block on the
    diagonal."""

    number: int
    groups: tuple[ReviewGroup, ...]
    #: The tiles as the player sees them, row by row.
    grid: tuple[Tile, ...]
    #: 1 easy .. 4 expert.
    level: int
    solver_optimal: bool
    solver_margin: float
    difficulty: float
    ambiguous: bool
    below_bar: bool
    #: n x n float64, read-only: a batch keeps one per puzzle to the end (2 KB each,
    #: where tuples of Python floats were 10 KB).
    similarity: np.ndarray = field(compare=False)

    @property
    def columns(self) -> int:
        return len(self.groups[0].words)


@dataclass(frozen=True, slots=True)
class BatchFigures:
    """The batch-wide counts beside the puzzles' own figures."""

    random_seed: int
    puzzles_requested: int
    puzzles_rebuilt: int
    #: Failed themes per kind (`FailureKind` values), most frequent first.
    failed_theme_kinds: tuple[tuple[str, int], ...]
    #: Themes drawn per candidate source: members, neighbours, replaced.
    theme_sources: tuple[tuple[str, int], ...]


def review_puzzles(
    puzzles: Sequence[Puzzle],
    scores: Sequence[PuzzleScore],
    below_bar: Sequence[bool],
    embedded: Mapping[str, EmbeddedTheme],
    seed: int,
    first_number: int = 1,
) -> list[ReviewPuzzle]:
    """One `ReviewPuzzle` per puzzle, numbered from `first_number` as in
    final_puzzles.json (a window of the batch starts further on)."""
    reviewed: list[ReviewPuzzle] = []
    for number, (puzzle, score, flagged) in enumerate(
        zip(puzzles, scores, below_bar, strict=True), start=first_number
    ):
        word_vectors, _ = puzzle_arrays(puzzle, embedded)
        levels = score.group_levels
        # Easiest group first, as the app reveals them: the solution and the heatmap agree.
        order = sorted(range(len(levels)), key=lambda group: (levels[group], group))
        groups = tuple(
            ReviewGroup(puzzle.groups[index].theme, puzzle.groups[index].words, levels[index])
            for index in order
        )
        size = len(groups[0].words)
        rows = [index * size + offset for index in order for offset in range(size)]
        pretends = {decoy.word: decoy.pretends for decoy in puzzle.decoys}
        tile_of = {
            word: Tile(word, index, pretends.get(word))
            for index, group in enumerate(groups)
            for word in group.words
        }
        reviewed.append(
            ReviewPuzzle(
                number=number,
                groups=groups,
                # The app's own order (puzzle_sets.json), so the editor sees its grid.
                grid=tuple(tile_of[word] for word in shuffled_tiles(puzzle, seed, number)),
                level=score.puzzle_level,
                solver_optimal=score.solver_optimal,
                solver_margin=score.solver_margin,
                difficulty=score.difficulty,
                ambiguous=score.ambiguous,
                below_bar=flagged,
                similarity=similarity_matrix(word_vectors[rows]),
            )
        )
    return reviewed


def batch_figures(
    seed: int,
    requested: int,
    rebuilt: int,
    failed_themes: Mapping[str, ThemeFailure],
    theme_sources: Mapping[str, str],
) -> BatchFigures:
    failed = Counter(failure.kind.value for failure in failed_themes.values())
    sources = Counter(theme_sources.values())
    return BatchFigures(
        seed,
        requested,
        rebuilt,
        tuple(sorted(failed.items(), key=lambda item: (-item[1], item[0]))),
        tuple(sorted(sources.items(), key=lambda item: (-item[1], item[0]))),
    )


def similarity_matrix(word_vectors: np.ndarray) -> np.ndarray:
    """The cosines between the words' vectors (n x n, rows in the vectors' order),
    rounded to `SIMILARITY_DECIMALS`; computed in float64 so the rounding is stable,
    and rounded by Python's `round`, which is correctly rounded where `np.round` is not."""
    units = unit_rows(word_vectors, np.float64)
    cosines = np.clip(units @ units.T, -1.0, 1.0)
    rounded = np.array(
        [[round(float(value), SIMILARITY_DECIMALS) + 0.0 for value in row] for row in cosines],
        dtype=np.float64,
    ).reshape(cosines.shape)
    rounded.flags.writeable = False
    return rounded
