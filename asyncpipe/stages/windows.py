"""A batch in windows of puzzles, so that memory stays flat however large the batch.

Every theme of a batch once lived until the batch was written: at 768 dimensions
that was about 0.3 MB a puzzle, 3 GB for 10,000 puzzles. Now the batch is made
window by window (`puzzle_generation.puzzles_per_window`, 100 by default). A
window's primary themes are embedded, assembled into its puzzles and scored
through its own `RoundPlanner`, drawing spares from the one queue the windows
share; then what the outputs need of it is set aside (`asyncpipe.io.kept_outputs`)
and its vectors are let go before the next window starts.

Pure: no asyncio, no I/O. `batch_windows` says which themes and how many puzzles
each window has; `MadeWindows` joins what the windows made into the batch's
result. Windows depend only on the draw and the params, never on timing, so the
same params and seed make the same puzzles, and a batch no larger than one window
is made exactly as it was before there were windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from asyncpipe.puzzle.assembly import AssemblyResult, Puzzle
from asyncpipe.puzzle.failures import ThemeFailure
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.stages.planner import PlannedBatch, given_up


@dataclass(frozen=True)
class Window:
    """The batch's puzzles `first_puzzle` to `first_puzzle + puzzles - 1`, as the draw
    counts them, made from `themes` (primary ones, in draw order) and the spares they
    need. The files number the puzzles made, so after a window that fell short (no
    spares left) the later ones come earlier there."""

    number: int
    first_puzzle: int
    puzzles: int
    themes: tuple[str, ...]


def batch_windows(
    primary: Sequence[str], puzzle_count: int, themes_per_puzzle: int, puzzles_per_window: int
) -> tuple[Window, ...]:
    """The windows of a batch of `puzzle_count` puzzles drawn as `primary` (usable
    themes, in draw order): each takes the next window's worth of themes, and the last
    whatever is left. Windows short of themes (some drawn were unusable) draw spares."""
    count = max(1, math.ceil(puzzle_count / puzzles_per_window))
    windows: list[Window] = []
    for index in range(count):
        first = index * puzzles_per_window
        puzzles = min(puzzles_per_window, puzzle_count - first)
        start = first * themes_per_puzzle
        end = len(primary) if index == count - 1 else start + puzzles * themes_per_puzzle
        windows.append(Window(index + 1, first + 1, puzzles, tuple(primary[start:end])))
    return tuple(windows)


@dataclass
class MadeWindows:
    """What the windows made so far, joined in window order: the batch's result."""

    puzzles: list[Puzzle] = field(default_factory=list)
    scores: list[PuzzleScore] = field(default_factory=list)
    below_bar: list[bool] = field(default_factory=list)
    #: Themes that failed embedding or were dropped by a rebuild.
    failed_in_rounds: dict[str, ThemeFailure] = field(default_factory=dict)
    #: Themes no assembly could use (too few distinct candidates), with the reason.
    unusable: dict[str, str] = field(default_factory=dict)
    #: Why each puzzle a window could not make was not made, in window order.
    not_made: list[str] = field(default_factory=list)
    unused_themes: list[str] = field(default_factory=list)
    themes_embedded: int = 0
    puzzles_rebuilt: int = 0
    windows: int = 0
    #: A signal, or a spent day, cut the batch short.
    partial: bool = False

    def add(self, result: PlannedBatch) -> None:
        assembly = result.assembly
        self.puzzles += assembly.puzzles
        self.scores += result.scores
        self.below_bar += result.below_bar
        self.failed_in_rounds.update(result.failed_in_rounds)
        self.unusable.update(assembly.failed_themes)
        self.not_made += assembly.failed_puzzles.values()
        self.unused_themes += assembly.unused_themes
        self.themes_embedded += len(result.embedded)
        self.puzzles_rebuilt += result.puzzles_rebuilt
        self.windows += 1
        self.partial |= result.partial

    @property
    def assembly(self) -> AssemblyResult:
        """The windows' puzzles, numbered through the batch as its files number them; the
        puzzles not made are named after them, as one assembly of the batch names them."""
        first_missing = len(self.puzzles) + 1
        failed = {
            f"puzzle_{number}": reason
            for number, reason in enumerate(self.not_made, start=first_missing)
        }
        return AssemblyResult(
            tuple(self.puzzles), dict(self.unusable), failed, tuple(self.unused_themes)
        )

    @property
    def failed_themes(self) -> Mapping[str, ThemeFailure]:
        """As `PlannedBatch.failed_themes`, over every window."""
        return given_up(self.failed_in_rounds, self.unusable)
