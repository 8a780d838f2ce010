"""reports/puzzles.html: one self-contained page on which a puzzle editor reviews a batch.

Pure string building from `asyncpipe.io.review_batch` values; `asyncpipe.io.files`
writes the result. The page needs nothing but a browser: styles, charts (inline
SVG) and the filter script are all inline, and it loads nothing from the network.
Every text that comes from the run (theme names come from users' files) goes
through `html.escape`; numbers are formatted at fixed places and nothing depends
on the clock, so the same batch gives the same bytes.

Shown: a summary (headline counts, bar charts of puzzle levels, solver margins,
theme sources, rebuilt and failed themes), a filter for puzzles below the quality
bar or ambiguous, and per puzzle the player's grid, the solution in the group
colours with decoys marked, the solver's verdict, and a 16x16 cosine heatmap.

Not here: what the figures are (`review_batch`, the scorer), or the app's files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html import escape

import numpy as np

from asyncpipe.io.review_batch import BatchFigures, ReviewPuzzle
from asyncpipe.puzzle.difficulty import GROUP_COLORS, PUZZLE_LABELS, group_color, puzzle_label

#: Bins of the solver-margin histogram.
MARGIN_BINS = 8
#: Letters beyond which a tile's word is set smaller.
_LONG_WORD = 11
#: Pixels per heatmap cell.
_CELL = 10
#: Width of the group-colour strips along the heatmap's edges.
_STRIP = 4
#: The heatmap's colour ramp, least to most similar (light grey-blue to dark blue).
_RAMP = ((247, 251, 255), (8, 48, 107))

_STYLE = """
:root{--yellow:#f9df6d;--green:#a0c35a;--blue:#b0c4ef;--purple:#ba81c5;--tile:#efefe6;
--ink:#1f1f1f;--muted:#666;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--ink)}
body{margin:0 auto;max-width:1160px;padding:16px}
h1{margin:0 0 4px}h2{font-size:1.1em;margin:0 0 8px;display:flex;gap:8px;align-items:center}
.lede{color:var(--muted);margin:0 0 12px}
.figures{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px;padding:0;list-style:none}
.figures li{background:#f4f4f4;border-radius:6px;padding:6px 10px}
.figures b{font-size:1.2em}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
.chart{margin:0}.chart figcaption{font-weight:600;margin-bottom:4px}
.chart text{font-size:11px;fill:var(--ink)}.chart .bar{fill:#5b7fb8}
.bar.yellow{fill:var(--yellow)}.bar.green{fill:var(--green)}.bar.blue{fill:var(--blue)}
.bar.purple{fill:var(--purple)}.bar.warn{fill:#d9822b}
.filter{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ddd;
display:flex;gap:16px;align-items:center;flex-wrap:wrap;z-index:1}
.puzzle{border:1px solid #ddd;border-radius:8px;padding:12px;margin:12px 0}
.puzzle.flagged{border-color:#d9822b}.puzzle[hidden]{display:none}
.body{display:grid;grid-template-columns:auto 1fr auto;gap:16px;align-items:start}
.grid{display:grid;grid-template-columns:repeat(var(--columns),104px);gap:4px}
.tile{background:var(--tile);border-radius:4px;height:44px;display:flex;align-items:center;
justify-content:center;text-align:center;font-weight:700;text-transform:uppercase;
font-size:11px;overflow-wrap:anywhere;padding:0 3px;letter-spacing:-.01em}
.tile.long{font-size:9px}.tile.decoy{outline:2px dashed #c0392b;outline-offset:-3px}
.solution{display:flex;flex-direction:column;gap:4px}
.group{border-radius:4px;padding:4px 8px}
.group.yellow{background:var(--yellow)}.group.green{background:var(--green)}
.group.blue{background:var(--blue)}.group.purple{background:var(--purple)}
.theme{font-weight:700}.words{font-size:.92em}
.decoy-mark{color:#c0392b;font-weight:700}
.verdict{margin:6px 0 0;font-size:.92em;color:var(--muted)}
.badge{font-size:.75em;border-radius:10px;padding:2px 8px;background:#eee;font-weight:600}
.badge.level-1{background:var(--yellow)}.badge.level-2{background:var(--green)}
.badge.level-3{background:var(--blue)}.badge.level-4{background:var(--purple)}
.badge.warn{background:#d9822b;color:#fff}.badge.ambiguous{background:#c0392b;color:#fff}
.heat{margin:0}.heat figcaption{font-size:.8em;color:var(--muted);max-width:172px}
.heat .s-yellow{fill:var(--yellow)}.heat .s-green{fill:var(--green)}
.heat .s-blue{fill:var(--blue)}.heat .s-purple{fill:var(--purple)}
"""

# The filter: with no box ticked every puzzle shows; otherwise those matching a ticked box.
_SCRIPT = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-filter]"));
  var puzzles = Array.prototype.slice.call(document.querySelectorAll("article.puzzle"));
  var shown = document.getElementById("shown");
  function apply() {
    var wanted = boxes.filter(function (box) { return box.checked; })
      .map(function (box) { return box.getAttribute("data-filter"); });
    var count = 0;
    puzzles.forEach(function (puzzle) {
      var show = wanted.length === 0 || wanted.some(function (name) {
        return puzzle.getAttribute("data-" + name) === "1";
      });
      puzzle.hidden = !show;
      if (show) { count += 1; }
    });
    shown.textContent = "showing " + count + " of " + puzzles.length;
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  apply();
})();
"""


def review_page(puzzles: Sequence[ReviewPuzzle], figures: BatchFigures) -> str:
    """The whole page, as text."""
    return "".join(review_page_parts(puzzles, figures))


def review_page_parts(puzzles: Sequence[ReviewPuzzle], figures: BatchFigures) -> Iterator[str]:
    """The page in parts, a puzzle each, to be written as they come: a batch of 2,000
    puzzles is a page of about 60 MB, which held whole doubled the run's memory at its end."""
    scale = _similarity_scale(puzzles)
    flagged = sum(puzzle.below_bar for puzzle in puzzles)
    ambiguous = sum(puzzle.ambiguous for puzzle in puzzles)
    title = f"Puzzle review: {len(puzzles)} puzzles, seed {figures.random_seed}"
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{escape(title)}</h1>",
        '<p class="lede">Each puzzle as the player sees it, its solution in the group '
        "colours, the embedding solver's verdict, and the cosines between its 16 words.</p>",
        _headline(puzzles, figures),
        '<div class="charts">',
        _level_chart(puzzles),
        _margin_chart(puzzles),
        _count_chart("Themes drawn, by candidate source", figures.theme_sources),
        _count_chart(
            "Rebuilt puzzles and failed themes",
            (("puzzles rebuilt", figures.puzzles_rebuilt), *figures.failed_theme_kinds),
            "warn",
        ),
        "</div></header>",
        '<nav class="filter" aria-label="filter">',
        '<label><input type="checkbox" data-filter="flagged"> only below the quality bar '
        f"({flagged})</label>",
        f'<label><input type="checkbox" data-filter="ambiguous"> only ambiguous ({ambiguous})'
        "</label>",
        f'<span id="shown">showing {len(puzzles)} of {len(puzzles)}</span></nav>',
        "<main>",
    ]
    yield "\n".join(head) + "\n"
    for puzzle in puzzles:
        yield _puzzle(puzzle, scale) + "\n"
    yield f"</main><script>{_SCRIPT}</script></body></html>\n"


def _headline(puzzles: Sequence[ReviewPuzzle], figures: BatchFigures) -> str:
    counts = (
        ("puzzles", f"{len(puzzles)} of {figures.puzzles_requested}"),
        ("solver finds the intended grouping", str(sum(p.solver_optimal for p in puzzles))),
        ("ambiguous", str(sum(p.ambiguous for p in puzzles))),
        ("below the quality bar", str(sum(p.below_bar for p in puzzles))),
        ("rebuilt", str(figures.puzzles_rebuilt)),
        ("failed themes", str(sum(count for _, count in figures.failed_theme_kinds))),
    )
    items = "".join(f"<li><b>{value}</b> {escape(name)}</li>" for name, value in counts)
    return f'<ul class="figures">{items}</ul>'


def _level_chart(puzzles: Sequence[ReviewPuzzle]) -> str:
    rows = []
    for level, label in enumerate(PUZZLE_LABELS, start=1):
        chosen = [puzzle for puzzle in puzzles if puzzle.level == level]
        ambiguous = sum(puzzle.ambiguous for puzzle in chosen)
        name = f"{label} ({ambiguous} ambiguous)" if ambiguous else label
        rows.append((name, len(chosen), GROUP_COLORS[level - 1]))
    return _bar_chart("Puzzle levels", rows)


def _margin_chart(puzzles: Sequence[ReviewPuzzle]) -> str:
    """A histogram of the solver margins, in equal bins from the lowest to the highest."""
    margins = [puzzle.solver_margin for puzzle in puzzles]
    if not margins:
        return _bar_chart("Solver margins", [])
    low, high = min(margins), max(margins)
    width = (high - low) / MARGIN_BINS or 1.0
    counts = [0] * MARGIN_BINS
    for margin in margins:
        counts[min(int((margin - low) / width), MARGIN_BINS - 1)] += 1
    rows = [
        (
            f"{low + width * bin_:.2f} to {low + width * (bin_ + 1):.2f}",
            count,
            "warn" if low + width * bin_ < 0 else "",
        )
        for bin_, count in enumerate(counts)
    ]
    return _bar_chart("Solver margins", rows)


def _count_chart(title: str, counts: Sequence[tuple[str, int]], css_class: str = "") -> str:
    return _bar_chart(title, [(name.replace("_", " "), count, css_class) for name, count in counts])


def _bar_chart(title: str, rows: Sequence[tuple[str, int, str]]) -> str:
    """Horizontal bars, one per row (label, count, CSS class), scaled to the largest."""
    label_width, bar_width, height = 150, 90, 18
    most = max((count for _, count, _ in rows), default=0) or 1
    body = []
    for index, (label, count, css_class) in enumerate(rows):
        y = index * height
        length = round(bar_width * count / most, 1)
        body.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar {css_class}" x="{label_width}" y="{y + 3}" width="{length}" '
            f'height="{height - 6}"></rect>'
            f'<text x="{label_width + length + 4}" y="{y + 13}">{count}</text>'
        )
    if not rows:
        body.append('<text x="0" y="13">nothing to show</text>')
    total_height = max(len(rows), 1) * height
    total_width = label_width + bar_width + 40
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg width="{total_width}" height="{total_height}" role="img" '
        f'aria-label="{escape(title)}">{"".join(body)}</svg></figure>'
    )


def _puzzle(puzzle: ReviewPuzzle, scale: tuple[float, float]) -> str:
    flags = []
    if puzzle.below_bar:
        flags.append('<span class="badge warn">below the quality bar</span>')
    if puzzle.ambiguous:
        flags.append('<span class="badge ambiguous">ambiguous</span>')
    classes = "puzzle flagged" if puzzle.below_bar else "puzzle"
    return (
        f'<article class="{classes}" id="puzzle-{puzzle.number}" '
        f'data-flagged="{int(puzzle.below_bar)}" data-ambiguous="{int(puzzle.ambiguous)}">'
        f"<h2>Puzzle {puzzle.number} "
        f'<span class="badge level-{puzzle.level}">{escape(puzzle_label(puzzle.level))}</span>'
        f"{''.join(flags)}</h2>"
        f'<div class="body">{_grid(puzzle)}<div>{_solution(puzzle)}{_verdict(puzzle)}</div>'
        f"{_heatmap(puzzle, scale)}</div></article>"
    )


def _grid(puzzle: ReviewPuzzle) -> str:
    tiles = []
    for tile in puzzle.grid:
        # Long words in a smaller type, so that they fit a tile unbroken.
        classes = "tile long" if len(tile.word) > _LONG_WORD else "tile"
        if tile.decoy_for is None:
            tiles.append(f'<div class="{classes}">{escape(tile.word)}</div>')
        else:
            hint = f"decoy: looks like {tile.decoy_for}"
            tiles.append(
                f'<div class="{classes} decoy" title="{escape(hint)}">{escape(tile.word)}</div>'
            )
    return (
        f'<div class="grid" role="grid" aria-label="grid of puzzle {puzzle.number}" '
        f'style="--columns:{puzzle.columns}">{"".join(tiles)}</div>'
    )


def _solution(puzzle: ReviewPuzzle) -> str:
    decoys = {tile.word: tile.decoy_for for tile in puzzle.grid if tile.decoy_for is not None}
    rows = []
    for group in puzzle.groups:
        words = []
        for word in group.words:
            text = escape(word)
            if word in decoys:
                text += f' <span class="decoy-mark">(decoy for {escape(str(decoys[word]))})</span>'
            words.append(text)
        rows.append(
            f'<div class="group {group_color(group.level)}">'
            f'<span class="theme">{escape(group.theme)}</span>: '
            f'<span class="words">{", ".join(words)}</span></div>'
        )
    return f'<div class="solution">{"".join(rows)}</div>'


def _verdict(puzzle: ReviewPuzzle) -> str:
    finds = "finds the intended grouping" if puzzle.solver_optimal else "prefers another grouping"
    return (
        f'<p class="verdict">Solver {finds}; margin {puzzle.solver_margin:.3f}, '
        f"difficulty {puzzle.difficulty:.2f}"
        f"{', ambiguous' if puzzle.ambiguous else ''}.</p>"
    )


def _heatmap(puzzle: ReviewPuzzle, scale: tuple[float, float]) -> str:
    """The cosine matrix as SVG cells, words in solution order, a colour strip per group."""
    words = [word for group in puzzle.groups for word in group.words]
    size = len(words)
    edge = _STRIP + 1
    cells = []
    for index, group in enumerate(puzzle.groups):
        start = edge + index * len(group.words) * _CELL
        length = len(group.words) * _CELL
        color = group_color(group.level)
        cells.append(
            f'<rect class="s-{color}" x="{start}" y="0" width="{length}" height="{_STRIP}">'
            f"</rect>"
            f'<rect class="s-{color}" x="0" y="{start}" width="{_STRIP}" height="{length}">'
            f"</rect>"
        )
    for row, row_word in enumerate(words):
        for column, column_word in enumerate(words):
            value = puzzle.similarity[row][column]
            fill = "#d8d8d8" if row == column else _color(value, scale)
            cells.append(
                f'<rect x="{edge + column * _CELL}" y="{edge + row * _CELL}" '
                f'width="{_CELL}" height="{_CELL}" fill="{fill}"><title>'
                f"{escape(row_word)} / {escape(column_word)}: {value:.2f}</title></rect>"
            )
    side = edge + size * _CELL
    low, high = scale
    return (
        f'<figure class="heat"><svg width="{side}" height="{side}" role="img" '
        f'aria-label="word similarity of puzzle {puzzle.number}">{"".join(cells)}</svg>'
        f"<figcaption>Cosine between words, solution order; light {low:.2f} to dark "
        f"{high:.2f}</figcaption></figure>"
    )


def _similarity_scale(puzzles: Sequence[ReviewPuzzle]) -> tuple[float, float]:
    """The lowest and highest cosine between two different words of any puzzle: one
    scale for the batch, so heatmaps compare, whatever the provider's baseline."""
    low, high = float("inf"), float("-inf")
    for puzzle in puzzles:
        matrix = np.asarray(puzzle.similarity, dtype=np.float64)
        off_diagonal = matrix[~np.eye(len(matrix), dtype=bool)]
        if off_diagonal.size:
            low, high = min(low, float(off_diagonal.min())), max(high, float(off_diagonal.max()))
    if low > high:
        return (0.0, 1.0)
    return (low, high)


def _color(value: float, scale: tuple[float, float]) -> str:
    low, high = scale
    share = 0.0 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    start, end = _RAMP
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(start, end, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"
