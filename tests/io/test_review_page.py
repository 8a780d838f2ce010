"""The review page built from a hand-made batch: as text, and rendered in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from asyncpipe.io.files import write_text
from asyncpipe.io.review_batch import BatchFigures, ReviewGroup, ReviewPuzzle, Tile
from asyncpipe.io.review_page import review_page, review_page_parts
from tests.browser import REVIEW_PAGE_PROBE, load_with_probe

HOSTILE = "<script>alert(1)</script>"


def _puzzle(number: int, themes: list[str], **verdict: object) -> ReviewPuzzle:
    groups = tuple(
        ReviewGroup(
            theme, tuple(f"{theme[:3].lower()}{index}{number}" for index in range(4)), level
        )
        for level, theme in enumerate(themes, start=1)
    )
    tiles = [
        Tile(word, group, "Trees" if (number, word) == (2, groups[1].words[0]) else None)
        for group, entry in enumerate(groups)
        for word in entry.words
    ]
    identity = tuple(
        tuple(
            1.0 if row == column else round(0.1 * ((row + column) % 7), 2) for column in range(16)
        )
        for row in range(16)
    )
    values: dict[str, object] = {
        "level": 1,
        "solver_optimal": True,
        "solver_margin": 1.5,
        "difficulty": 0.3,
        "ambiguous": False,
        "below_bar": False,
    }
    values.update(verdict)
    return ReviewPuzzle(
        number=number,
        groups=groups,
        grid=tuple(tiles[4 * (i % 4) + i // 4] for i in range(16)),  # one group a column
        similarity=identity,
        **values,  # type: ignore[arg-type]
    )


def _batch() -> tuple[list[ReviewPuzzle], BatchFigures]:
    puzzles = [
        _puzzle(1, ["Trees", "Fish", HOSTILE, "Rivers & <Lakes>"]),
        _puzzle(2, ["Birds", "Dogs", "Cats", "Cars"], below_bar=True, level=3, difficulty=0.85),
        _puzzle(
            3,
            ["Moons", "Gods", "Kings", "Poets"],
            ambiguous=True,
            solver_optimal=False,
            solver_margin=-0.2,
            level=4,
        ),
    ]
    figures = BatchFigures(42, 4, 1, (("api_failed", 2),), (("members", 11), ("neighbours", 1)))
    return puzzles, figures


def test_theme_names_are_escaped_and_the_page_loads_nothing_from_elsewhere() -> None:
    page = review_page(*_batch())
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Rivers &amp; &lt;Lakes&gt;" in page
    assert page.count("<script>") == 1
    assert not re.search(r"(https?:)?//[a-z]", page.replace("http://www.w3.org", ""))
    assert not re.search(r"\b(src|href)=", page)


def test_the_same_batch_gives_the_same_bytes() -> None:
    assert review_page(*_batch()) == review_page(*_batch())


def test_a_decoy_tile_is_marked_in_the_grid_and_in_the_solution() -> None:
    page = review_page(*_batch())
    assert page.count(' decoy" title="decoy: looks like Trees"') == 1
    assert "(decoy for Trees)" in page


def test_in_chromium_each_puzzle_is_one_grid_the_filter_works_and_nothing_is_logged(
    tmp_path: Path,
) -> None:
    page = tmp_path / "puzzles.html"
    page.write_text(review_page(*_batch()), encoding="utf-8")
    loaded = load_with_probe(page, REVIEW_PAGE_PROBE, tmp_path)
    probe = loaded.probe
    assert loaded.console == []
    assert probe["puzzles"] == 3
    assert probe["gridsPerPuzzle"] == [1, 1, 1]
    assert probe["tilesPerGrid"] == [16, 16, 16]
    assert probe["rowsInFirstGrid"] == 4
    assert probe["heatmapCells"] == [256, 256, 256]
    assert (probe["visibleAll"], probe["visibleFlagged"], probe["visibleAmbiguous"]) == (3, 1, 1)
    assert probe["shownFlagged"] == "showing 1 of 3"
    # The hostile theme is text on the page, and no script but the page's and the probe's ran.
    assert HOSTILE in probe["themes"]
    assert "Rivers & <Lakes>" in probe["themes"]
    assert probe["scripts"] == 2
    assert len(probe["decoys"]) == 1
    assert probe["resources"] == 0


def test_the_page_written_in_parts_is_the_page(tmp_path: Path) -> None:
    parts = list(review_page_parts(*_batch()))
    path = tmp_path / "puzzles.html"
    write_text(path, iter(parts))

    assert len(parts) == len(_batch()[0]) + 2  # the head, a part per puzzle, the end
    assert path.read_text(encoding="utf-8") == review_page(*_batch())
