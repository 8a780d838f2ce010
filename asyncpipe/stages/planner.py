"""The rounds of stage 3, decided without doing any of them: what to embed, score, drop.

Pure: no asyncio, no I/O, no clock. `RoundPlanner` holds the state of one
batch and answers `next_step()` with a small decision; the async driver
(`asyncpipe.stages.driver`) carries it out and tells the planner what came of
it (`embedded`, `scored`), then asks again:

    Embed(themes)     embed a round of themes: the primary ones first, then
                      spares, each round just large enough for the puzzles
                      still missing (spares cost API calls with a paid provider)
    Score(puzzles)    score the puzzles not scored yet
    Rebuild(dropped)  the poor puzzles each gave up their least coherent theme
                      (`quality.on_low_quality: rebuild`); nothing to do but say so
    Done(result)      the batch, complete or cut short

The assembly always sees the embedded themes in draw order, so the puzzles
depend neither on the rounds nor on whether the run was resumed: a resumed run
makes the same decisions, with the recorded themes and scores already at hand.

A signal is passed to `next_step` as `signalled`: from then on no new round
starts (no spares are drawn, no rebuild begins), and the result holds only the
puzzles scored by then. The driver reads the signal after telling the planner
its last result, when the planner has already assembled what it was told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, auto

from asyncpipe.puzzle.assembly import AssemblyResult, Puzzle, assemble_puzzles
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.history import NO_MEMORY, GroupMemory
from asyncpipe.puzzle.lexicon import Lexicon
from asyncpipe.puzzle.quality import below_bar, closer_elsewhere_in, word_vectors_in
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.puzzle.selection import CloserElsewhere, PuzzleSelection
from asyncpipe.settings.sections import Candidates, PuzzleGeneration, Quality

#: A puzzle's 16 words in grid order: how scores are keyed, here and in the checkpoint.
PuzzleKey = tuple[str, ...]


@dataclass(frozen=True)
class Embed:
    """Embed `themes` (in draw order), then call `RoundPlanner.embedded`."""

    themes: tuple[str, ...]
    #: Themes of this round that failed for good in the interrupted run: not tried again.
    resumed_failures: tuple[str, ...] = ()
    #: The round draws spares to replace failed themes (every round but the first).
    spares: bool = False

    @property
    def drawn(self) -> int:
        """The themes this round takes from the draw, tried or not."""
        return len(self.themes) + len(self.resumed_failures)


@dataclass(frozen=True)
class Score:
    """Score these puzzles (none scored yet), then call `RoundPlanner.scored`."""

    puzzles: tuple[Puzzle, ...]


@dataclass(frozen=True)
class Rebuild:
    """Puzzles below the quality bar each gave up their least coherent theme."""

    #: The dropped themes, one per poor puzzle, in puzzle order.
    dropped: Mapping[str, ThemeFailure]

    @property
    def puzzles(self) -> int:
        return len(self.dropped)


@dataclass(frozen=True, repr=False)  # repr=False: the result holds every vector of the batch
class PlannedBatch:
    """What the rounds made."""

    #: Every theme embedded, in the order the rounds embedded them.
    embedded: Mapping[str, EmbeddedTheme]
    #: The last assembly; when `partial`, only its puzzles that were scored.
    assembly: AssemblyResult
    #: One score per puzzle of `assembly`, and whether it is below the bar.
    scores: tuple[PuzzleScore, ...]
    below_bar: tuple[bool, ...]
    #: Themes that failed embedding or were dropped by a rebuild, in the order that happened.
    failed_in_rounds: Mapping[str, ThemeFailure]
    puzzles_rebuilt: int
    #: A signal cut the rounds short.
    partial: bool

    @property
    def failed_themes(self) -> dict[str, ThemeFailure]:
        """Every theme the rounds gave up: `failed_in_rounds`, then those the last
        assembly could not use (too few distinct candidates)."""
        return given_up(self.failed_in_rounds, self.assembly.failed_themes)


def given_up(
    failed_in_rounds: Mapping[str, ThemeFailure], unusable: Mapping[str, str]
) -> dict[str, ThemeFailure]:
    """The themes failed in the rounds, then those the assembly could not use (`unusable`:
    the reason for each, too few distinct candidates)."""
    return {
        **failed_in_rounds,
        **{
            theme: ThemeFailure(FailureKind.TOO_FEW_CANDIDATES, reason)
            for theme, reason in unusable.items()
        },
    }


@dataclass(frozen=True)
class Done:
    result: PlannedBatch


Step = Embed | Score | Rebuild | Done


class _Phase(Enum):
    EMBEDDING = auto()  # an Embed was handed out; waiting for `embedded`
    ASSEMBLED = auto()  # the assembly is current: spares, or scoring, come next
    SCORING = auto()  # a Score was handed out; waiting for `scored`
    JUDGING = auto()  # every puzzle of the assembly is scored: rebuild, or done
    DONE = auto()


class RoundPlanner:
    """The state of one batch's rounds; see the module docstring for the protocol."""

    def __init__(
        self,
        themes: Sequence[str],
        primary: Sequence[str],
        generation: PuzzleGeneration,
        bar: Quality,
        resumed_failures: Mapping[str, ThemeFailure] | None = None,
        resumed_scores: Mapping[PuzzleKey, PuzzleScore] | None = None,
        categories: Mapping[str, str] | None = None,
        lexicon: Lexicon | None = None,
        candidates: Candidates | None = None,
        history: GroupMemory = NO_MEMORY,
        puzzles: int | None = None,
    ) -> None:
        """`themes`: every usable theme in draw order; `primary`: those drawn for the
        puzzles (the rest are spares); `puzzles`: how many to make (by default the
        batch's `total_puzzle_count`; a window's, `asyncpipe.stages.windows`);
        `resumed_*`: what the interrupted run recorded;
        `categories`: the lexicon category of each theme served by its members (the
        assembly then keeps overlapping categories apart and picks the words with
        `asyncpipe.puzzle.selection`, as `candidates` says); `history`: the groups the
        published batches forbid (`asyncpipe.puzzle.history`), kept by that selection."""
        self._generation = generation
        self._puzzles = generation.total_puzzle_count if puzzles is None else puzzles
        self._bar = bar
        self._categories = dict(categories or {})
        if self._categories and lexicon is None:
            raise ValueError("themes served by categories need the lexicon")
        self._lexicon = lexicon
        self._candidates = candidates or Candidates()
        self._history = history
        self._ordered = tuple(themes)
        chosen = set(primary)
        self._queue = [theme for theme in self._ordered if theme in chosen]
        self._primary_count = len(self._queue)
        self._spares = [theme for theme in self._ordered if theme not in chosen]
        self._resumed_failures = dict(resumed_failures or {})
        self._scores: dict[PuzzleKey, PuzzleScore] = dict(resumed_scores or {})
        self._embedded: dict[str, EmbeddedTheme] = {}
        self._failures: dict[str, ThemeFailure] = {}
        self._rejected: set[str] = set()
        self._rebuild_round = 0
        self._rebuilt = 0
        self._cut_short = False
        self._spare_round = False
        self._assembly = AssemblyResult((), {}, {})
        # Made on the first assembly and kept for the next rounds, with what they
        # worked out (`PuzzleSelection`): the themes already embedded stay as they are.
        self._closer: CloserElsewhere | None = None
        self._selection: PuzzleSelection | None = None
        self._phase = _Phase.EMBEDDING
        if not self._queue:
            self._assemble()

    @property
    def primary_count(self) -> int:
        """The primary themes: what the first round embeds (or skips, when resumed)."""
        return self._primary_count

    @property
    def spares(self) -> tuple[str, ...]:
        """The spare themes not drawn yet, in the order the next draws take them."""
        return tuple(self._spares)

    @property
    def embedded_themes(self) -> Mapping[str, EmbeddedTheme]:
        """The themes embedded so far: what a Score step's puzzles are made of."""
        return self._embedded

    def next_step(self, signalled: bool = False) -> Step:
        """The next thing to do; `signalled`: a signal asked the run to wind down."""
        if self._phase is _Phase.EMBEDDING:
            return self._embed_step()
        if self._phase is _Phase.SCORING:
            return Score(self._unscored())
        if self._phase is _Phase.ASSEMBLED:
            missing = self._puzzles - len(self._assembly.puzzles)
            if missing and self._spares:
                if not signalled:
                    return self._draw_spares(missing)
                self._cut_short = True
            if self._unscored():
                self._phase = _Phase.SCORING
                return Score(self._unscored())
            self._phase = _Phase.JUDGING
        if self._phase is _Phase.JUDGING:
            return self._judge(signalled)
        return Done(self._result())

    def embedded(
        self,
        embedded: Mapping[str, EmbeddedTheme],
        failed: Mapping[str, ThemeFailure],
        stopped: bool = False,
    ) -> None:
        """The round handed out is over: these themes were embedded, these failed.

        `stopped`: a signal stopped the round; a theme neither embedded nor failed
        was simply not finished.
        """
        self._expect(_Phase.EMBEDDING, "embedded")
        if any(self._embedded.get(theme, value) is not value for theme, value in embedded.items()):
            # A theme embedded anew: what the selection worked out of it is stale.
            self._closer = self._selection = None
        self._embedded.update(embedded)
        for theme in self._queue:  # in draw order, resumed or not
            failure = self._resumed_failures.get(theme) or failed.get(theme)
            if failure is not None:
                self._failures[theme] = failure
        self._cut_short |= stopped
        self._queue = []
        self._assemble()

    def scored(self, scores: Mapping[PuzzleKey, PuzzleScore]) -> None:
        """The puzzles of the Score step handed out were scored; those missing were not
        finished (a signal cut the scoring short)."""
        self._expect(_Phase.SCORING, "scored")
        self._scores.update(scores)
        if self._unscored():
            self._cut_short = True
        self._phase = _Phase.JUDGING

    def _embed_step(self) -> Embed:
        todo = tuple(theme for theme in self._queue if theme not in self._resumed_failures)
        skipped = tuple(theme for theme in self._queue if theme in self._resumed_failures)
        return Embed(todo, skipped, self._spare_round)

    def _draw_spares(self, missing: int) -> Embed:
        """Enough spares for the puzzles missing, beyond the themes the assembly left over."""
        per_puzzle = self._generation.themes_per_puzzle
        shortfall = missing * per_puzzle - len(self._assembly.unused_themes)
        take = max(shortfall, per_puzzle)
        self._queue, self._spares = self._spares[:take], self._spares[take:]
        self._spare_round = True
        self._phase = _Phase.EMBEDDING
        return self._embed_step()

    def _judge(self, signalled: bool) -> Step:
        """Every puzzle is scored: done, or drop the weakest theme of each poor one."""
        if self._cut_short:
            return self._finish()
        puzzles = self._assembly.puzzles
        scores = [self._scores[tuple(puzzle.words)] for puzzle in puzzles]
        poor = [index for index, score in enumerate(scores) if below_bar(score, self._bar)]
        if (
            self._bar.on_low_quality != "rebuild"
            or not poor
            or self._rebuild_round == self._bar.max_rebuild_rounds
        ):
            return self._finish()
        if signalled:
            self._cut_short = True
            return self._finish()
        dropped: dict[str, ThemeFailure] = {}
        for index in poor:
            theme, failure = _weakest_theme(puzzles[index], scores[index])
            dropped[theme] = failure
        self._rejected.update(dropped)
        self._failures.update(dropped)
        self._rebuilt += len(poor)
        self._rebuild_round += 1
        self._assemble()
        return Rebuild(dropped)

    def _assemble(self) -> None:
        ranked = [
            self._embedded[theme].ranked
            for theme in self._ordered
            if theme in self._embedded and theme not in self._rejected
        ]
        if self._closer is None:
            # Both read `self._embedded` as it is when asked: the later rounds' themes too.
            self._closer = closer_elsewhere_in(self._embedded)
            if self._categories and self._lexicon is not None:
                self._selection = PuzzleSelection(
                    self._lexicon,
                    self._categories,
                    word_vectors_in(self._embedded),
                    self._closer,
                    max_overlap=self._candidates.max_category_overlap,
                    pool_size=self._candidates.selection_pool,
                    decoys=self._bar.red_herrings,
                    history=self._history,
                )
        self._assembly = assemble_puzzles(
            ranked,
            self._puzzles,
            self._generation.themes_per_puzzle,
            self._generation.words_per_theme,
            closer_elsewhere=self._closer,
            selection=self._selection,
        )
        self._phase = _Phase.ASSEMBLED

    def _unscored(self) -> tuple[Puzzle, ...]:
        return tuple(p for p in self._assembly.puzzles if tuple(p.words) not in self._scores)

    def _finish(self) -> Done:
        self._phase = _Phase.DONE
        return Done(self._result())

    def _result(self) -> PlannedBatch:
        assembly = self._assembly
        if self._cut_short:
            completed = tuple(p for p in assembly.puzzles if tuple(p.words) in self._scores)
            assembly = dataclasses.replace(assembly, puzzles=completed)
        scores = tuple(self._scores[tuple(puzzle.words)] for puzzle in assembly.puzzles)
        return PlannedBatch(
            embedded=dict(self._embedded),
            assembly=assembly,
            scores=scores,
            below_bar=tuple(below_bar(score, self._bar) for score in scores),
            failed_in_rounds=dict(self._failures),
            puzzles_rebuilt=self._rebuilt,
            partial=self._cut_short,
        )

    def _expect(self, phase: _Phase, told: str) -> None:
        if self._phase is not phase:
            raise RuntimeError(f"RoundPlanner.{told}() called in phase {self._phase.name}")


def _weakest_theme(puzzle: Puzzle, score: PuzzleScore) -> tuple[str, ThemeFailure]:
    """The theme of the puzzle's least coherent group, and why it is dropped."""
    weakest = min(range(len(puzzle.groups)), key=lambda group: score.coherence[group])
    reason = (
        f"dropped to rebuild a puzzle below the quality bar (difficulty "
        f"{score.difficulty:.2f}{', ambiguous' if score.ambiguous else ''}); "
        "it was that puzzle's least coherent group"
    )
    return puzzle.groups[weakest].theme, ThemeFailure(FailureKind.DROPPED_BY_REBUILD, reason)
