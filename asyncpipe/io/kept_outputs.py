"""What the batch's outputs keep of each window, once its vectors are let go.

The batch is made in windows (`asyncpipe.stages.windows`), and its outputs are
written when the last window is done. Of a window this keeps, for then:

- each embedded theme as a `ThemeRecord` (the reports: similarity statistics, the
  all-embeddings table's manifest), in a `RecordSpool` on disk;
- the rows of both embedding tables, in `BlockSpool`s on disk;
- the review page's puzzles, whose similarity heatmaps are the only part of it
  that needs vectors.

So the memory a window's vectors took is given back, and what grows with the batch
is about a hundred bytes a theme (the spool's index) and 2 KB a review puzzle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from asyncpipe.io.block_spool import BlockSpool
from asyncpipe.io.documents import all_embeddings_blocks, puzzle_embeddings_blocks
from asyncpipe.io.record_spool import RecordSpool
from asyncpipe.io.review_batch import ReviewPuzzle, review_puzzles
from asyncpipe.puzzle.assembly import Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.scoring import PuzzleScore


class KeptOutputs:
    """Takes each window's result (`take`), in window order; `close` (or
    `contextlib.closing`) drops its spools."""

    def __init__(self, puzzle_table: Path, theme_table: Path, seed: int) -> None:
        """`puzzle_table`, `theme_table`: the embedding tables the rows are for (their
        spools go beside them); `seed`: the batch's, which deals the review page's grids."""
        self._seed = seed
        self.themes = RecordSpool(theme_table.parent)
        self.puzzle_rows = BlockSpool(puzzle_table.parent)
        self.theme_rows = BlockSpool(theme_table.parent)
        self.reviewed: list[ReviewPuzzle] = []

    def take(
        self,
        embedded: Mapping[str, EmbeddedTheme],
        puzzles: Sequence[Puzzle],
        scores: Sequence[PuzzleScore],
        below_bar: Sequence[bool],
    ) -> None:
        """A window is done: what it embedded, and its scored puzzles. They are numbered
        after the puzzles of the windows before, as the batch's files number them (a
        window that fell short leaves no gap)."""
        first = len(self.reviewed) + 1
        for block in all_embeddings_blocks(embedded):
            self.theme_rows.append(block)
        for block in puzzle_embeddings_blocks(puzzles, embedded, first):
            self.puzzle_rows.append(block)
        self.reviewed += review_puzzles(puzzles, scores, below_bar, embedded, self._seed, first)
        self.themes.append({theme: found.record() for theme, found in embedded.items()})

    def close(self) -> None:
        self.puzzle_rows.close()
        self.theme_rows.close()
        self.themes.close()
