"""A batch in windows: which themes and how many puzzles each window gets, and the
batch's result joined from theirs; then real offline runs made in windows."""

from __future__ import annotations

import csv
import gc
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import asyncpipe
from asyncpipe.io.kept_outputs import KeptOutputs
from asyncpipe.puzzle.assembly import AssemblyResult, Group, Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.settings.params_file import load_params
from asyncpipe.settings.sections import Params
from asyncpipe.stages import driver
from asyncpipe.stages.planner import PlannedBatch, RoundPlanner
from asyncpipe.stages.windows import MadeWindows, Window, batch_windows
from tests.stages.test_planner import a_score
from tests.support import ALL_TABLE, ANALYSIS, FINAL, METADATA, PUZZLE_TABLE, REPO, load

THEMES = tuple(f"t{n:02}" for n in range(40))


def test_windows_take_the_draw_in_order_and_the_last_takes_the_rest() -> None:
    windows = batch_windows(THEMES[:38], 10, 4, 4)

    assert [(w.number, w.first_puzzle, w.puzzles) for w in windows] == [
        (1, 1, 4),
        (2, 5, 4),
        (3, 9, 2),
    ]
    assert windows[0].themes == THEMES[:16]
    assert windows[1].themes == THEMES[16:32]
    # Short of two themes (unusable ones were drawn): the last window draws spares.
    assert windows[2].themes == THEMES[32:38]


def test_a_batch_no_larger_than_a_window_is_one_window_of_every_theme() -> None:
    assert batch_windows(THEMES[:20], 5, 4, 100) == (Window(1, 1, 5, THEMES[:20]),)
    assert batch_windows(THEMES[:8], 2, 4, 2) == (Window(1, 1, 2, THEMES[:8]),)


def test_windows_without_themes_left_still_ask_for_their_puzzles() -> None:
    windows = batch_windows(THEMES[:4], 3, 4, 1)

    assert [(w.first_puzzle, w.themes) for w in windows] == [(1, THEMES[:4]), (2, ()), (3, ())]


def _planned(puzzles: Sequence[Puzzle], failed: Mapping[str, str], partial: bool) -> PlannedBatch:
    return PlannedBatch(
        embedded={},
        assembly=AssemblyResult(tuple(puzzles), {"short": "only 3 words"}, dict(failed)),
        scores=tuple(a_score() for _ in puzzles),
        below_bar=tuple(False for _ in puzzles),
        failed_in_rounds={"down": ThemeFailure(FailureKind.API_FAILED, "503")},
        puzzles_rebuilt=1,
        partial=partial,
    )


def _puzzle(name: str) -> Puzzle:
    return Puzzle(
        tuple(Group(f"{name}{group}", (f"{name}{group}w",), (0.5,)) for group in range(2))
    )


def test_the_windows_results_join_in_window_order() -> None:
    made = MadeWindows()
    made.add(_planned([_puzzle("a"), _puzzle("b")], {}, partial=False))
    made.add(_planned([_puzzle("c")], {"puzzle_4": "ran out of themes"}, partial=True))

    assert [puzzle.themes[0] for puzzle in made.assembly.puzzles] == ["a0", "b0", "c0"]
    assert len(made.scores) == len(made.below_bar) == 3
    assert made.assembly.failed_puzzles == {"puzzle_4": "ran out of themes"}
    assert (made.puzzles_rebuilt, made.windows, made.partial) == (2, 2, True)
    assert {t: f.kind for t, f in made.failed_themes.items()} == {
        "down": FailureKind.API_FAILED,
        "short": FailureKind.TOO_FEW_CANDIDATES,
    }


def test_puzzles_a_window_could_not_make_are_named_after_every_puzzle_made() -> None:
    """A middle window short of themes leaves no gap: the files number the puzzles made,
    and the missing ones come after them, as one assembly of the batch names them."""
    made = MadeWindows()
    made.add(_planned([_puzzle("a")], {"puzzle_2": "ran out of themes"}, partial=False))
    made.add(_planned([_puzzle("b"), _puzzle("c")], {}, partial=False))

    assert made.assembly.failed_puzzles == {"puzzle_4": "ran out of themes"}


# --- real runs, offline -----------------------------------------------------------------

COUNT = 12


def _params(per_window: int, count: int = COUNT) -> Params:
    params = load_params(REPO / "params.yaml").params
    generation = params.puzzle_generation.model_copy(
        update={"total_puzzle_count": count, "puzzles_per_window": per_window}
    )
    return params.model_copy(update={"puzzle_generation": generation})


@pytest.fixture
def window_themes(monkeypatch: pytest.MonkeyPatch) -> list[list[weakref.ref[EmbeddedTheme]]]:
    """Weak references to the themes of each window, taken as the window is handed to
    the outputs; as each next window starts, the themes of every earlier one must be
    gone already, before any of its own are embedded."""
    windows: list[list[weakref.ref[EmbeddedTheme]]] = []
    take = KeptOutputs.take

    def watched(self: KeptOutputs, embedded: Mapping[str, EmbeddedTheme], *rest: Any) -> None:
        windows.append([weakref.ref(theme) for theme in embedded.values()])
        take(self, embedded, *rest)

    class WatchedPlanner(RoundPlanner):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # The thread that handed a window over may drop its arguments a moment after
            # the loop has gone on: a leak is what is still held a second later.
            for _ in range(100):
                gc.collect()
                alive = sum(ref() is not None for window in windows for ref in window)
                if not alive:
                    break
                time.sleep(0.01)
            assert alive == 0, f"{alive} themes of earlier windows still held"
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(KeptOutputs, "take", watched)
    monkeypatch.setattr(driver, "RoundPlanner", WatchedPlanner)
    return windows


@pytest.mark.slow
def test_a_windowed_batch_holds_no_window_but_the_current_one(
    tmp_path: Path, window_themes: list[list[weakref.ref[EmbeddedTheme]]]
) -> None:
    report = asyncpipe.generate(_params(per_window=4), tmp_path, provider="glove")

    assert (report.puzzles_generated, report.partial) == (COUNT, False)
    assert len(window_themes) == 3
    assert all(len(window) >= 16 for window in window_themes)  # spares come on top


@pytest.mark.slow
def test_a_windowed_batch_is_numbered_and_written_as_one(tmp_path: Path) -> None:
    """Windows of 5: the tables, the review page and the app's file number the puzzles
    through the batch, and a second run in a fresh folder writes the same bytes."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        asyncpipe.generate(_params(per_window=5), folder, provider="glove")

    final = load(first, FINAL)
    assert list(final) == [f"puzzle_{n}" for n in range(1, COUNT + 1)]
    assert (first / FINAL).read_bytes() == (second / FINAL).read_bytes()
    assert (first / ALL_TABLE).read_bytes() == (second / ALL_TABLE).read_bytes()
    rows = _csv_rows(first / PUZZLE_TABLE)
    assert [row["word_type"] for row in rows] == [
        f"puzzle_{n}" for n in range(1, COUNT + 1) for _ in range(16)
    ]
    assert [row["word"] for row in rows] == [
        word for n in range(1, COUNT + 1) for word in final[f"puzzle_{n}"]["words"]
    ]
    page = (first / "reports/puzzles.html").read_text()
    assert all(f"Puzzle {n} " in page for n in range(1, COUNT + 1))
    summary = load(first, ANALYSIS)["embedding_summary"]
    every_text = _csv_rows(first / ALL_TABLE)
    assert len(every_text) == summary["themes_embedded"] + summary["candidate_vectors"]
    assert summary["themes_embedded"] >= 4 * COUNT


@pytest.mark.slow
def test_a_window_short_of_themes_leaves_no_gap_in_the_numbering(tmp_path: Path) -> None:
    """No spares: some windows make fewer puzzles than they are for. The tables and the
    review page number the puzzles as final_puzzles.json does, and the puzzles not made
    are named after them."""
    params = _params(per_window=10, count=40)
    generation = params.puzzle_generation.model_copy(update={"spare_theme_fraction": 0.0})
    report = asyncpipe.generate(
        params.model_copy(update={"puzzle_generation": generation}), tmp_path, provider="glove"
    )

    made = report.puzzles_generated
    assert made < 40  # else this batch tests nothing
    assert list(load(tmp_path, FINAL)) == [f"puzzle_{n}" for n in range(1, made + 1)]
    labels = dict.fromkeys(row["word_type"] for row in _csv_rows(tmp_path / PUZZLE_TABLE))
    assert list(labels) == [f"puzzle_{n}" for n in range(1, made + 1)]
    page = (tmp_path / "reports/puzzles.html").read_text()
    assert f"Puzzle {made} " in page and f"Puzzle {made + 1} " not in page
    failed = load(tmp_path, METADATA)["failed_puzzles"]
    assert list(failed) == [f"puzzle_{n}" for n in range(made + 1, 41)]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))
