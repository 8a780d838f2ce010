"""End to end: `asyncpipe run` writes reports/puzzles.html, and headless Chromium renders it."""

from __future__ import annotations

from pathlib import Path

from tests.browser import REVIEW_PAGE_PROBE, load_with_probe, screenshot
from tests.support import FINAL, PUZZLE_SETS, load, run_cli
from tests.test_cli import new_workdir

PAGE = Path("reports/puzzles.html")
HISTORY = Path("data/history/published.jsonl")


def test_a_run_writes_a_page_that_renders_one_grid_per_puzzle_without_console_errors(
    tmp_path: Path,
) -> None:
    workdir = new_workdir(tmp_path / "batch")
    completed = run_cli(["run", "--count", "6"], workdir)
    assert completed.returncode == 0, completed.stderr
    page = workdir / PAGE
    first = page.read_bytes()

    loaded = load_with_probe(page, REVIEW_PAGE_PROBE, tmp_path / "browser")
    picture = tmp_path / "puzzles.png"
    screenshot(page, picture, tmp_path / "browser")
    assert picture.stat().st_size > 0

    assert loaded.console == []
    probe = loaded.probe
    puzzles = load(workdir, FINAL)
    assert probe["puzzles"] == len(puzzles) == 6
    assert probe["gridsPerPuzzle"] == [1] * 6
    assert probe["rowsInFirstGrid"] == 4
    assert probe["heatmapCells"] == [256] * 6
    assert probe["resources"] == 0
    app = next(iter(load(workdir, PUZZLE_SETS)["puzzleSets"].values()))["4x4"]
    for grid, entry, shown in zip(probe["gridWords"], puzzles.values(), app.values(), strict=True):
        assert sorted(grid) == sorted(entry["words"])
        assert grid != entry["words"]  # shuffled, not grouped theme by theme
        assert grid == shown["words"]  # the grid the app shows
    assert sorted(probe["themes"]) == sorted(
        theme for entry in puzzles.values() for theme in entry["themes"]
    )

    # No timestamp: the same batch again gives the same page (from the same history:
    # the first run's batch is in it now, and a new batch would avoid it).
    (workdir / HISTORY).unlink()
    assert run_cli(["run", "--count", "6"], workdir).returncode == 0
    assert page.read_bytes() == first
