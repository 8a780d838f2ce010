"""The round planner, played in-process: which themes go next, when spares are drawn and
how many, what a rebuild drops, when a signal cuts the run short, what a resume skips.

No event loop and no provider: each theme's vectors are made by hand (its own axis,
its candidates close to it), and scores are made to order, so every decision the
planner takes can be forced and checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from asyncpipe.puzzle.embedded import EmbeddedTheme, VectorRows
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.ranking import RankedTheme
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.puzzle.selection import PuzzleSelection
from asyncpipe.settings.sections import PuzzleGeneration, Quality
from asyncpipe.stages.planner import (
    Done,
    Embed,
    PlannedBatch,
    PuzzleKey,
    Rebuild,
    RoundPlanner,
    Score,
    Step,
)

DIMENSION = 64
THEMES = tuple(f"Theme {chr(ord('A') + n)}" for n in range(26))
API_DOWN = ThemeFailure(FailureKind.API_FAILED, "embedding failed: 503")


def embedded_theme(theme: str, words: int = 6) -> EmbeddedTheme:
    """The theme on its own axis; its candidates near it, closest first."""
    axis = THEMES.index(theme)
    theme_vector = np.zeros(DIMENSION, dtype=np.float32)
    theme_vector[axis] = 1.0
    rng = np.random.default_rng(axis)
    candidates = tuple(f"{theme[-1].lower()}word{chr(ord('a') + n)}" for n in range(words))
    vectors = theme_vector + 0.05 * rng.standard_normal((words, DIMENSION)).astype(np.float32)
    return ranked_by_cosine(theme, candidates, theme_vector, vectors)


def ranked_by_cosine(
    theme: str, words: tuple[str, ...], theme_vector: np.ndarray, vectors: np.ndarray
) -> EmbeddedTheme:
    """`words` embedded as `vectors`, ranked by their cosine to the theme."""
    scores = vectors @ theme_vector / np.linalg.norm(vectors, axis=1)
    order = np.argsort(-scores, kind="stable")
    ranked = RankedTheme(
        theme,
        tuple(words[row] for row in order),
        tuple(float(scores[row]) for row in order),
        tuple(int(row) for row in order),
    )
    return EmbeddedTheme(theme_vector, words, VectorRows.of(vectors), scores, ranked)


def a_score(
    difficulty: float = 0.3, coherence: Sequence[float] = (0.9, 0.8, 0.7, 0.6)
) -> PuzzleScore:
    return PuzzleScore(
        coherence=tuple(coherence),
        theme_fit=(0.9,) * 4,
        separation=0.5,
        silhouette=(0.5,) * 16,
        mean_silhouette=0.5,
        misplaced_words=(),
        textual_pairs=(),
        textual_penalty=0.0,
        solver_optimal=True,
        solver_margin=1.0,
        solver_best_groups=((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)),
        difficulty=difficulty,
        ambiguous=False,
    )


def planner(
    puzzles: int,
    primary: int,
    spares: int,
    bar: Quality | None = None,
    resumed_failures: Mapping[str, ThemeFailure] | None = None,
    resumed_scores: Mapping[PuzzleKey, PuzzleScore] | None = None,
) -> RoundPlanner:
    generation = PuzzleGeneration(total_puzzle_count=puzzles)
    themes = THEMES[: primary + spares]
    return RoundPlanner(
        themes, themes[:primary], generation, bar or Quality(), resumed_failures, resumed_scores
    )


@dataclass
class Play:
    """A synchronous stand-in for the driver, recording every step it was given."""

    failing: Collection[str] = ()
    #: Difficulty of a puzzle, from its themes (default 0.3: above no bar).
    difficulty: Callable[[list[str]], float] = lambda themes: 0.3
    #: A signal arrives after this many steps (None: never).
    signal_after: int | None = None
    #: Puzzles scored before the scoring is cut short (None: all).
    score_only: int | None = None
    #: How a theme comes back embedded.
    embed: Callable[[str], EmbeddedTheme] = embedded_theme
    steps: list[Step] = field(default_factory=list)

    def through(self, planner: RoundPlanner) -> PlannedBatch:
        while True:
            signalled = self.signal_after is not None and len(self.steps) >= self.signal_after
            step = planner.next_step(signalled)
            self.steps.append(step)
            match step:
                case Embed(themes):
                    embedded = {t: self.embed(t) for t in themes if t not in self.failing}
                    failed = {t: API_DOWN for t in themes if t in self.failing}
                    planner.embedded(embedded, failed, stopped=signalled)
                case Score(puzzles):
                    done = puzzles if self.score_only is None else puzzles[: self.score_only]
                    planner.scored(
                        {tuple(p.words): a_score(self.difficulty(p.themes)) for p in done}
                    )
                case Rebuild():
                    pass
                case Done(result):
                    return result

    def embedded_rounds(self) -> list[tuple[str, ...]]:
        return [step.themes for step in self.steps if isinstance(step, Embed)]

    def kinds(self) -> list[str]:
        return [type(step).__name__ for step in self.steps]


def themes_of(result: PlannedBatch) -> list[list[str]]:
    return [puzzle.themes for puzzle in result.assembly.puzzles]


def test_the_primary_themes_are_embedded_first_in_draw_order_and_spares_only_when_needed() -> None:
    play = Play()
    result = play.through(planner(puzzles=3, primary=12, spares=4))

    assert play.kinds() == ["Embed", "Score", "Done"]
    assert play.embedded_rounds() == [THEMES[:12]]
    first = play.steps[0]
    assert isinstance(first, Embed) and not first.spares
    assert themes_of(result) == [list(THEMES[0:4]), list(THEMES[4:8]), list(THEMES[8:12])]
    assert len(result.scores) == 3 and result.below_bar == (False, False, False)
    assert not result.partial and result.failed_themes == {} and result.puzzles_rebuilt == 0


def test_a_spare_round_covers_the_missing_puzzles_less_the_themes_left_over() -> None:
    # 3 of 12 fail: 2 puzzles and 1 theme left over; 1 puzzle short -> 4 - 1 = 3 themes,
    # but a round takes at least a puzzle's worth: 4.
    play = Play(failing={THEMES[1], THEMES[5], THEMES[9]})
    result = play.through(planner(puzzles=3, primary=12, spares=8))

    assert play.embedded_rounds() == [THEMES[:12], THEMES[12:16]]
    spare_round = play.steps[1]
    assert isinstance(spare_round, Embed) and spare_round.spares and spare_round.drawn == 4
    assert len(result.assembly.puzzles) == 3
    # The assembly sees every embedded theme in draw order, spares after the primary ones.
    used = [theme for puzzle in themes_of(result) for theme in puzzle]
    assert used == [t for t in THEMES[:15] if t not in play.failing]
    assert result.assembly.unused_themes == (THEMES[15],)
    assert result.failed_themes == dict.fromkeys(sorted(play.failing), API_DOWN)


def test_the_spares_not_drawn_yet_are_told_in_the_order_the_draws_take_them() -> None:
    rounds = planner(puzzles=3, primary=12, spares=8)
    assert rounds.spares == tuple(THEMES[12:20])

    Play(failing=THEMES[:3]).through(rounds)

    # One spare round took the first four; the next draw would start at the fifth.
    assert rounds.spares == tuple(THEMES[16:20])


def test_many_failures_draw_as_many_spares_as_the_missing_puzzles_need() -> None:
    play = Play(failing=set(THEMES[:8]))  # 4 embedded: 1 puzzle, none left over; 2 short
    play.through(planner(puzzles=3, primary=12, spares=10))

    assert play.embedded_rounds() == [THEMES[:12], THEMES[12:20]]


def test_spares_are_drawn_round_after_round_while_they_keep_failing() -> None:
    play = Play(failing={THEMES[0], *THEMES[4:8]})
    result = play.through(planner(puzzles=1, primary=4, spares=6))

    assert play.embedded_rounds() == [THEMES[:4], THEMES[4:8], THEMES[8:10]]
    assert themes_of(result) == [[THEMES[1], THEMES[2], THEMES[3], THEMES[8]]]


def test_with_no_spare_left_the_puzzles_that_could_be_made_are_scored() -> None:
    play = Play(failing={THEMES[6]})
    result = play.through(planner(puzzles=2, primary=8, spares=0))

    assert play.kinds() == ["Embed", "Score", "Done"]
    assert len(result.assembly.puzzles) == 1
    assert list(result.assembly.failed_puzzles) == ["puzzle_2"]
    assert not result.partial


def test_a_theme_with_too_few_distinct_words_is_reported_from_the_assembly() -> None:
    thin = RoundPlanner(THEMES[:5], THEMES[:4], PuzzleGeneration(total_puzzle_count=1), Quality())
    step = thin.next_step()
    assert isinstance(step, Embed)
    embedded = {
        theme: embedded_theme(theme, words=3 if theme == THEMES[0] else 6) for theme in step.themes
    }
    thin.embedded(embedded, {})
    assert thin.next_step() == Embed((THEMES[4],), (), spares=True)

    failure = ThemeFailure(
        FailureKind.TOO_FEW_CANDIDATES, "only 3 distinct candidate words, a group needs 4"
    )
    thin.embedded({THEMES[4]: embedded_theme(THEMES[4])}, {})
    score = thin.next_step()
    assert isinstance(score, Score)
    thin.scored({tuple(p.words): a_score() for p in score.puzzles})
    done = thin.next_step()
    assert isinstance(done, Done)
    assert done.result.failed_themes == {THEMES[0]: failure}
    assert done.result.failed_in_rounds == {}


def test_a_signal_before_spares_are_drawn_scores_what_is_assembled_and_ends_partial() -> None:
    play = Play(failing={THEMES[2]}, signal_after=1)
    result = play.through(planner(puzzles=2, primary=8, spares=4))

    assert play.kinds() == ["Embed", "Score", "Done"]
    assert len(result.assembly.puzzles) == 1
    assert result.partial


def test_a_round_stopped_by_a_signal_makes_the_result_partial_even_when_complete() -> None:
    batch = planner(puzzles=1, primary=4, spares=0)
    step = batch.next_step()
    assert isinstance(step, Embed)
    batch.embedded({t: embedded_theme(t) for t in step.themes}, {}, stopped=True)
    score = batch.next_step(signalled=True)
    assert isinstance(score, Score) and len(score.puzzles) == 1  # scored within the grace
    batch.scored({tuple(score.puzzles[0].words): a_score()})
    done = batch.next_step(signalled=True)
    assert isinstance(done, Done) and done.result.partial
    assert len(done.result.assembly.puzzles) == 1


def test_scoring_cut_short_keeps_only_the_scored_puzzles() -> None:
    play = Play(score_only=2)
    result = play.through(planner(puzzles=3, primary=12, spares=0))

    assert result.partial
    assert themes_of(result) == [list(THEMES[0:4]), list(THEMES[4:8])]
    assert len(result.scores) == 2


REBUILD = Quality(on_low_quality="rebuild", max_difficulty=0.8, max_rebuild_rounds=3)


def test_a_rebuild_drops_the_least_coherent_theme_of_each_poor_puzzle_and_reassembles() -> None:
    # A puzzle holding Theme H is poor; coherence (0.9, 0.8, 0.7, 0.6): its 4th group
    # (Theme H) is the weakest.
    play = Play(difficulty=lambda themes: 0.9 if THEMES[7] in themes else 0.3)
    result = play.through(planner(puzzles=2, primary=8, spares=4, bar=REBUILD))

    assert play.kinds() == ["Embed", "Score", "Rebuild", "Embed", "Score", "Done"]
    rebuild = play.steps[2]
    assert isinstance(rebuild, Rebuild) and rebuild.puzzles == 1
    reason = (
        "dropped to rebuild a puzzle below the quality bar (difficulty 0.90); "
        "it was that puzzle's least coherent group"
    )
    assert rebuild.dropped == {THEMES[7]: ThemeFailure(FailureKind.DROPPED_BY_REBUILD, reason)}
    # One spare round of a puzzle's worth, then only the new puzzle is scored.
    assert play.embedded_rounds() == [THEMES[:8], THEMES[8:12]]
    second_score = play.steps[4]
    assert isinstance(second_score, Score)
    assert [p.themes for p in second_score.puzzles] == [[*THEMES[4:7], THEMES[8]]]
    assert themes_of(result) == [list(THEMES[0:4]), [*THEMES[4:7], THEMES[8]]]
    assert result.puzzles_rebuilt == 1 and not result.partial
    assert result.failed_in_rounds == rebuild.dropped


def test_rebuilds_stop_after_max_rebuild_rounds_and_the_poor_puzzles_stay_flagged() -> None:
    play = Play(difficulty=lambda themes: 0.9)  # every puzzle is poor, whatever it holds
    bar = Quality(on_low_quality="rebuild", max_difficulty=0.8, max_rebuild_rounds=2)
    result = play.through(planner(puzzles=1, primary=4, spares=8, bar=bar))

    assert play.kinds().count("Rebuild") == 2
    assert result.puzzles_rebuilt == 2
    assert result.below_bar == (True,)
    assert not result.partial


def test_flagging_never_rebuilds() -> None:
    play = Play(difficulty=lambda themes: 0.9)
    bar = Quality(on_low_quality="flag", max_difficulty=0.8)
    result = play.through(planner(puzzles=1, primary=4, spares=8, bar=bar))

    assert play.kinds() == ["Embed", "Score", "Done"]
    assert result.below_bar == (True,)


def test_a_signal_when_a_rebuild_would_start_ends_with_the_scored_puzzles_partial() -> None:
    play = Play(difficulty=lambda themes: 0.9, signal_after=2)
    result = play.through(planner(puzzles=1, primary=4, spares=8, bar=REBUILD))

    assert play.kinds() == ["Embed", "Score", "Done"]
    assert result.partial and len(result.assembly.puzzles) == 1
    assert result.puzzles_rebuilt == 0


def test_a_resumed_run_skips_what_failed_for_good_and_what_was_scored() -> None:
    fresh = Play(failing={THEMES[1]})
    before = fresh.through(planner(puzzles=2, primary=8, spares=4))
    unembeddable = ThemeFailure(FailureKind.UNEMBEDDABLE_TEXT, "embedding failed: refused")
    first_puzzle = before.assembly.puzzles[0]

    resumed = Play()
    after = resumed.through(
        planner(
            puzzles=2,
            primary=8,
            spares=4,
            resumed_failures={THEMES[1]: unembeddable},
            resumed_scores={tuple(first_puzzle.words): before.scores[0]},
        )
    )

    first = resumed.steps[0]
    assert isinstance(first, Embed)
    assert THEMES[1] not in first.themes and first.resumed_failures == (THEMES[1],)
    assert first.drawn == 8
    assert fresh.embedded_rounds() == [THEMES[:8], THEMES[8:12]]
    assert resumed.embedded_rounds() == [THEMES[:1] + THEMES[2:8], THEMES[8:12]]
    scored = [p for step in resumed.steps if isinstance(step, Score) for p in step.puzzles]
    assert first_puzzle not in scored and len(scored) == 1
    assert after.assembly.puzzles == before.assembly.puzzles
    assert after.failed_themes == {THEMES[1]: unembeddable}


def test_a_resumed_run_with_every_puzzle_scored_needs_no_scoring_step() -> None:
    before = Play().through(planner(puzzles=1, primary=4, spares=0))
    recorded = {tuple(p.words): s for p, s in zip(before.assembly.puzzles, before.scores)}

    play = Play()
    after = play.through(planner(puzzles=1, primary=4, spares=0, resumed_scores=recorded))

    assert play.kinds() == ["Embed", "Done"]
    assert after.scores == before.scores


def test_results_told_out_of_turn_are_refused() -> None:
    batch = planner(puzzles=1, primary=4, spares=0)
    with pytest.raises(RuntimeError, match="scored"):
        batch.scored({})
    step = batch.next_step()
    assert isinstance(step, Embed)
    assert batch.next_step() == step  # asking again changes nothing
    batch.embedded({t: embedded_theme(t) for t in step.themes}, {})
    with pytest.raises(RuntimeError, match="embedded"):
        batch.embedded({}, {})


#: Themes served by lexicon categories, as the planner then picks their words with a
#: `PuzzleSelection`. Orange is a fruit and a colour: a decoy can sit between the two.
MEMBERS = {
    "Birds": ("robin", "wren", "eagle", "hawk", "finch", "heron", "stork"),
    "Trees": ("oak", "elm", "ash", "pine", "birch", "beech", "maple"),
    "Gems": ("ruby", "opal", "jade", "pearl", "topaz", "garnet", "amber"),
    "Dances": ("waltz", "tango", "polka", "salsa", "samba", "jive", "rumba"),
    "Fruit": ("apple", "orange", "mango", "grape", "lemon", "peach", "plum"),
    "Metals": ("iron", "copper", "zinc", "tin", "nickel", "silver", "cobalt"),
    "Tools": ("hammer", "saw", "drill", "chisel", "wrench", "pliers", "spanner"),
    "Colours": ("red", "blue", "green", "orange", "purple", "violet", "indigo"),
    "Fish": ("cod", "trout", "salmon", "tuna", "perch", "carp", "haddock"),
    "Cheeses": ("brie", "feta", "gouda", "cheddar", "edam", "stilton", "parmesan"),
}


def member_theme(theme: str) -> EmbeddedTheme:
    """The theme on its own axis, its category's members near it, most typical first."""
    axis = list(MEMBERS).index(theme)
    theme_vector = np.zeros(DIMENSION, dtype=np.float32)
    theme_vector[axis] = 1.0
    rng = np.random.default_rng(100 + axis)
    words = MEMBERS[theme]
    vectors = theme_vector + 0.3 * rng.standard_normal((len(words), DIMENSION)).astype(np.float32)
    return ranked_by_cosine(theme, words, theme_vector, vectors)


def member_planner(puzzles: int, primary: int, bar: Quality | None = None) -> RoundPlanner:
    themes = tuple(MEMBERS)
    return RoundPlanner(
        themes,
        themes[:primary],
        PuzzleGeneration(total_puzzle_count=puzzles),
        bar or Quality(),
        categories={theme: theme for theme in themes},
        lexicon=Lexicon.of([Category(theme, words) for theme, words in MEMBERS.items()]),
    )


@pytest.mark.parametrize("failing", [{"Gems"}, {"Tools"}, {"Trees", "Dances"}])
def test_rounds_of_themes_served_by_categories_assemble_what_one_round_would(
    failing: set[str],
) -> None:
    # The planner keeps one selection for all its rounds; what it kept from the first
    # must not change what the spare round makes of the themes.
    play = Play(failing=failing, embed=member_theme)
    in_rounds = play.through(member_planner(puzzles=2, primary=8))
    at_once = Play(failing=failing, embed=member_theme).through(
        member_planner(puzzles=2, primary=len(MEMBERS))
    )

    assert len(play.embedded_rounds()) == 2
    assert in_rounds.assembly.puzzles == at_once.assembly.puzzles
    assert len(in_rounds.assembly.puzzles) == 2
    if failing != {"Gems"}:  # Fruit and Colours share a puzzle, and orange is a decoy
        assert any(puzzle.decoys for puzzle in in_rounds.assembly.puzzles)


def test_a_spare_round_does_not_search_again_the_puzzles_it_leaves_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    searched: list[tuple[str, ...]] = []
    search = PuzzleSelection._choose

    def recorded(self: PuzzleSelection, themes: Sequence[str], *rest: Any) -> list[list[str]]:
        searched.append(tuple(themes))
        return search(self, themes, *rest)

    monkeypatch.setattr(PuzzleSelection, "_choose", recorded)
    play = Play(failing={"Fruit"}, embed=member_theme)
    result = play.through(member_planner(puzzles=2, primary=8))

    assert len(play.embedded_rounds()) == 2
    first, second = (puzzle.themes for puzzle in result.assembly.puzzles)
    assert first == ["Birds", "Trees", "Gems", "Dances"]
    assert tuple(first) in searched and tuple(second) in searched
    assert len(searched) == len(set(searched))  # the first puzzle: searched in round 1 only


def test_a_rebuild_round_assembles_what_a_fresh_planner_makes_of_the_themes_left() -> None:
    # Fruit's group is its puzzle's least coherent: the rebuild drops it.
    def poor(themes: list[str]) -> float:
        return 2.0 if "Fruit" in themes else 0.3

    def weakest_fruit(puzzle: Any) -> PuzzleScore:
        coherence = [0.1 if group.theme == "Fruit" else 0.9 for group in puzzle.groups]
        return a_score(poor(puzzle.themes), coherence)

    bar = Quality(on_low_quality="rebuild", max_rebuild_rounds=1)
    rebuilt = member_planner(puzzles=2, primary=len(MEMBERS), bar=bar)
    step = rebuilt.next_step()
    assert isinstance(step, Embed)
    rebuilt.embedded({theme: member_theme(theme) for theme in step.themes}, {})
    score = rebuilt.next_step()
    assert isinstance(score, Score)
    rebuilt.scored({tuple(p.words): weakest_fruit(p) for p in score.puzzles})
    assert isinstance(rebuilt.next_step(), Rebuild)

    fresh = member_planner(puzzles=2, primary=len(MEMBERS) - 1)
    themes = tuple(theme for theme in MEMBERS if theme != "Fruit")
    fresh_step = fresh.next_step()
    assert isinstance(fresh_step, Embed)
    fresh.embedded({theme: member_theme(theme) for theme in themes}, {})

    assert rebuilt._assembly.puzzles == fresh._assembly.puzzles
    assert "Fruit" not in {theme for p in rebuilt._assembly.puzzles for theme in p.themes}


def test_a_theme_told_again_with_other_vectors_is_assembled_from_the_new_ones() -> None:
    def moved(theme: str) -> EmbeddedTheme:
        """The same ranking, but its members' vectors shuffled: another search result."""
        original = member_theme(theme)
        vectors = np.asarray(original.candidate_vectors)[[3, 5, 0, 6, 1, 4, 2]]
        return dataclasses.replace(original, candidate_vectors=VectorRows.of(vectors))

    again = member_planner(puzzles=2, primary=8)
    first = again.next_step()
    assert isinstance(first, Embed)
    again.embedded({t: member_theme(t) for t in first.themes if t != "Tools"}, {})
    spares = again.next_step()
    assert isinstance(spares, Embed) and spares.spares
    again.embedded({"Birds": moved("Birds"), **{t: member_theme(t) for t in spares.themes}}, {})

    fresh = member_planner(puzzles=2, primary=len(MEMBERS))
    step = fresh.next_step()
    assert isinstance(step, Embed)
    told = {t: member_theme(t) for t in step.themes if t != "Tools"}
    fresh.embedded({**told, "Birds": moved("Birds")}, {})

    assert again._assembly.puzzles == fresh._assembly.puzzles
