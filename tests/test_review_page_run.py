"""End to end: `asyncpipe run` writes reports/puzzles.html, and headless Chromium renders it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.browser import REVIEW_PAGE_PROBE, load_with_probe, screenshot
from tests.support import FINAL, run_cli
from tests.test_cli import load, new_workdir

PAGE = Path("reports/puzzles.html")


def test_a_run_writes_a_page_that_renders_one_grid_per_puzzle_without_console_errors(
    tmp_path: Path,
) -> None:
    workdir = new_workdir(tmp_path / "batch")
    completed = run_cli(["run", "--count", "6"], workdir)
    assert completed.returncode == 0, completed.stderr
    page = workdir / PAGE
    first = page.read_bytes()

    started = time.perf_counter()
    loaded = load_with_probe(page, REVIEW_PAGE_PROBE, tmp_path / "browser")
    picture = tmp_path / "puzzles.png"
    screenshot(page, picture, tmp_path / "browser")
    assert time.perf_counter() - started < 60

    assert loaded.console == []
    probe = loaded.probe
    puzzles = load(workdir, FINAL)
    assert probe["puzzles"] == len(puzzles) == 6
    assert probe["gridsPerPuzzle"] == [1] * 6
    assert probe["rowsInFirstGrid"] == 4
    assert probe["heatmapCells"] == [256] * 6
    assert probe["resources"] == 0
    for grid, entry in zip(probe["gridWords"], puzzles.values(), strict=True):
        assert sorted(grid) == sorted(entry["words"])
        assert grid != entry["words"]  # shuffled, not grouped theme by theme
    assert sorted(probe["themes"]) == sorted(
        theme for entry in puzzles.values() for theme in entry["themes"]
    )

    # No timestamp: the same batch again gives the same page.
    assert run_cli(["run", "--count", "6"], workdir).returncode == 0
    assert page.read_bytes() == first
