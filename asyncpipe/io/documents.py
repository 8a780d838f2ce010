"""The JSON documents and embedding tables of the enhance stage, built from its results.

Pure: these functions shape data and return it; `asyncpipe.io.files` writes it.
`final_puzzles.json` holds only what the same params and seed always produce
(no timings, no counters), so it is byte-identical from run to run; everything
that varies goes into `puzzle_metadata.json`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from asyncpipe.io.files import EntriesAsWritten
from asyncpipe.io.tables import EmbeddingRows
from asyncpipe.puzzle.assembly import Puzzle
from asyncpipe.puzzle.difficulty import (
    GROUP_COLORS,
    PUZZLE_LABELS,
    PUZZLE_LEVEL_CUTS,
    group_color,
    puzzle_label,
)
from asyncpipe.puzzle.embedded import EmbeddedTheme, ThemeRecord
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.settings.sections import Quality

#: Decimal places of similarity scores in the JSON outputs: enough to rank, and
#: few enough that last-bit differences between machines rarely show.
SCORE_DECIMALS = 6


def final_puzzles_document(
    puzzles: Sequence[Puzzle],
    include_scores: bool,
    quality: Sequence[PuzzleScore] | None = None,
    below_bar: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """The app's file; `quality` (one score per puzzle) adds each puzzle's scores and verdict,
    and `below_bar` whether it is under the configured quality bar (kept and flagged).

    With `quality`, each puzzle also gets what an app shows of its difficulty
    (`asyncpipe.puzzle.difficulty`): `group_levels` and `group_colors`, one per
    theme in `themes` order, and `difficulty_level` with its `difficulty_label`.
    A puzzle with red herrings lists them under `decoys`: each tile, the category it
    belongs to, and the one it `pretends` to."""
    return dict(_final_puzzles(puzzles, include_scores, quality, below_bar))


def final_puzzles_as_written(
    puzzles: Sequence[Puzzle],
    include_scores: bool,
    quality: Sequence[PuzzleScore] | None = None,
    below_bar: Sequence[bool] | None = None,
) -> EntriesAsWritten:
    """`final_puzzles_document` for `write_json`, each puzzle's entry made as it is
    written: for 10,000 puzzles the whole document was tens of MB at once."""
    return EntriesAsWritten(
        len(puzzles), lambda: _final_puzzles(puzzles, include_scores, quality, below_bar)
    )


def _final_puzzles(
    puzzles: Sequence[Puzzle],
    include_scores: bool,
    quality: Sequence[PuzzleScore] | None,
    below_bar: Sequence[bool] | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, puzzle in enumerate(puzzles, start=1):
        yield f"puzzle_{number}", _final_puzzle(puzzle, number, include_scores, quality, below_bar)


def _final_puzzle(
    puzzle: Puzzle,
    number: int,
    include_scores: bool,
    quality: Sequence[PuzzleScore] | None,
    below_bar: Sequence[bool] | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"words": puzzle.words, "themes": puzzle.themes}
    if puzzle.decoys:
        entry["decoys"] = [decoy.to_json() for decoy in puzzle.decoys]
    if include_scores:
        entry["theme_similarity_scores"] = [round(score, SCORE_DECIMALS) for score in puzzle.scores]
    if quality is not None:
        score = quality[number - 1]
        levels = score.group_levels
        entry["group_levels"] = list(levels)
        entry["group_colors"] = [group_color(level) for level in levels]
        entry["difficulty_level"] = score.puzzle_level
        entry["difficulty_label"] = puzzle_label(score.puzzle_level)
        entry["quality"] = score.to_json()
        if below_bar is not None:
            entry["quality"]["below_quality_bar"] = below_bar[number - 1]
    return entry


def embedding_analysis_document(
    embedded: Mapping[str, EmbeddedTheme | ThemeRecord],
    puzzles: Iterable[Puzzle],
    provider: Mapping[str, Any],
) -> dict[str, Any]:
    """Similarity statistics of all candidates and of the words the puzzles use."""
    return _embedding_analysis(embedded, puzzles, provider, dict(_per_theme(embedded)))


def embedding_analysis_as_written(
    embedded: Mapping[str, EmbeddedTheme | ThemeRecord],
    puzzles: Iterable[Puzzle],
    provider: Mapping[str, Any],
) -> dict[str, Any]:
    """`embedding_analysis_document` for `write_json`, each theme's statistics made as
    they are written: eleven figures a theme were some 45 MB at once for 50,000 themes."""
    per_theme = EntriesAsWritten(len(embedded), lambda: _per_theme(embedded))
    return _embedding_analysis(embedded, puzzles, provider, per_theme)


def _per_theme(
    embedded: Mapping[str, EmbeddedTheme | ThemeRecord],
) -> Iterator[tuple[str, dict[str, float | int]]]:
    for theme, result in embedded.items():
        yield theme, distribution(result.ranked_scores)


def _embedding_analysis(
    embedded: Mapping[str, EmbeddedTheme | ThemeRecord],
    puzzles: Iterable[Puzzle],
    provider: Mapping[str, Any],
    per_theme: dict[str, Any],
) -> dict[str, Any]:
    all_scores = np.concatenate(
        [np.zeros(0), *(theme.ranked_scores for theme in embedded.values())]
    )
    puzzle_scores = np.fromiter(
        (score for puzzle in puzzles for score in puzzle.scores), dtype=np.float64
    )
    theme_norms = [result.theme_vector_norm for result in embedded.values()]
    return {
        "provider": dict(provider),
        "candidate_similarity": distribution(all_scores),
        "puzzle_word_similarity": distribution(puzzle_scores),
        "per_theme_similarity": per_theme,
        "embedding_summary": {
            "themes_embedded": len(embedded),
            "candidate_vectors": int(
                sum(len(result.candidate_words) for result in embedded.values())
            ),
            "dimension": int(provider.get("dimension", 0)),
            "theme_vector_norm": distribution(np.asarray(theme_norms, dtype=np.float64)),
        },
    }


def all_embeddings_blocks(embedded: Mapping[str, EmbeddedTheme]) -> Iterator[EmbeddingRows]:
    """Every text the run embedded, one block per theme: the theme (rank 0), then its
    candidates in candidate order with their rank. Blocks keep memory flat: at 3072
    dimensions the whole table would be hundreds of MB at once."""
    for theme, result in embedded.items():
        rank_of = {row: rank for rank, row in enumerate(result.ranked.source_rows, start=1)}
        # Variants dropped from the ranking are still embedded texts: kept, rank -1.
        ranks = [0] + [rank_of.get(row, -1) for row in range(len(result.candidate_words))]
        count = len(ranks)
        yield EmbeddingRows(
            themes=[theme] * count,
            words=[theme, *result.candidate_words],
            word_types=["theme"] + ["candidate" if rank > 0 else "variant" for rank in ranks[1:]],
            similarities=[1.0, *(float(score) for score in result.candidate_scores)],
            ranks=ranks,
            vectors=np.stack([result.theme_vector, *result.candidate_vectors.rows]),
        )


def puzzle_embeddings_blocks(
    puzzles: Iterable[Puzzle], embedded: Mapping[str, EmbeddedTheme], first_number: int = 1
) -> Iterator[EmbeddingRows]:
    """The words of the puzzles only, one block per puzzle, in grid order; the first
    puzzle is numbered `first_number` (a window of the batch starts further on)."""
    for number, puzzle in enumerate(puzzles, start=first_number):
        themes: list[str] = []
        ranks: list[int] = []
        rows: list[np.ndarray] = []
        for group in puzzle.groups:
            result = embedded[group.theme]
            rank_of_word = {word: rank for rank, word in enumerate(result.ranked.words, start=1)}
            for word in group.words:
                themes.append(group.theme)
                ranks.append(rank_of_word[word])
                rows.append(result.candidate_vectors[result.row_of(word)])
        yield EmbeddingRows(
            themes=themes,
            words=puzzle.words,
            word_types=[f"puzzle_{number}"] * len(themes),
            similarities=puzzle.scores,
            ranks=ranks,
            vectors=np.stack(rows),
        )


def distribution(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Count, mean, spread and percentiles of some scores, rounded for a report."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"count": 0}
    figures: dict[str, float | int] = {"count": int(array.size)}
    # One call for the four percentiles (the same values as one call each, half the
    # time: a batch of 50,000 themes asks this once a theme).
    p10, p25, p75, p90 = np.percentile(array, [10, 25, 75, 90])
    named = {
        "mean": array.mean(),
        "std": array.std(),
        "min": array.min(),
        "p10": p10,
        "p25": p25,
        "median": np.median(array),
        "p75": p75,
        "p90": p90,
        "max": array.max(),
    }
    figures.update({name: round(float(value), SCORE_DECIMALS) for name, value in named.items()})
    return figures


def quality_report(
    scores: Sequence[PuzzleScore],
    below_bar: Sequence[bool] = (),
    rebuilt: int = 0,
    bar: Quality | None = None,
) -> dict[str, Any]:
    """Distributions and counts over a batch's puzzle scores."""
    return {
        "quality_bar": bar.model_dump() if bar is not None else None,
        "below_quality_bar": sum(below_bar),
        "puzzles_scored": len(scores),
        "solver_recovers_intended_grouping": sum(score.solver_optimal for score in scores),
        "ambiguous": sum(score.ambiguous for score in scores),
        "with_misplaced_words": sum(bool(score.misplaced_words) for score in scores),
        "with_textual_look_alikes": sum(bool(score.textual_pairs) for score in scores),
        "rebuilt": rebuilt,
        "difficulty": distribution([score.difficulty for score in scores]),
        "solver_margin": distribution([score.solver_margin for score in scores]),
        "mean_silhouette": distribution([score.mean_silhouette for score in scores]),
        "separation": distribution([score.separation for score in scores]),
        "textual_penalty": distribution([score.textual_penalty for score in scores]),
        "group_levels": group_levels_summary(scores),
        "puzzle_levels": puzzle_levels_summary(scores),
    }


def group_levels_summary(scores: Sequence[PuzzleScore]) -> list[dict[str, Any]]:
    """Per group level, 1 (yellow) to 4 (purple): how many groups have it, and their mean
    figures, which show the levels ordered (ease and coherence fall, closeness rises)."""
    figures: dict[int, list[tuple[float, float, float, float]]] = {
        level: [] for level in range(1, len(GROUP_COLORS) + 1)
    }
    for score in scores:
        for group, level in enumerate(score.group_levels):
            figures[level].append(
                (
                    score.group_ease[group],
                    score.coherence[group],
                    score.theme_fit[group],
                    score.closeness[group],
                )
            )
    summary: list[dict[str, Any]] = []
    for level, rows in figures.items():
        entry: dict[str, Any] = {"level": level, "color": group_color(level), "groups": len(rows)}
        for column, name in enumerate(("ease", "coherence", "theme_fit", "closeness")):
            entry[f"mean_{name}"] = _mean([row[column] for row in rows])
        summary.append(entry)
    return summary


def puzzle_levels_summary(scores: Sequence[PuzzleScore]) -> list[dict[str, Any]]:
    """Per puzzle level, 1 (easy) to 4 (expert): the solver difficulty it starts at, how
    many puzzles, how many of them are ambiguous (expert whatever their difficulty), and
    their mean solver difficulty and margin."""
    summary: list[dict[str, Any]] = []
    for level in range(1, len(PUZZLE_LABELS) + 1):
        chosen = [score for score in scores if score.puzzle_level == level]
        summary.append(
            {
                "level": level,
                "label": puzzle_label(level),
                "from_difficulty": (0.0, *PUZZLE_LEVEL_CUTS)[level - 1],
                "puzzles": len(chosen),
                "ambiguous": sum(score.ambiguous for score in chosen),
                "mean_difficulty": _mean([score.difficulty for score in chosen]),
                "mean_solver_margin": _mean([score.solver_margin for score in chosen]),
            }
        )
    return summary


def _mean(values: Sequence[float]) -> float | None:
    """Rounded for a report; None (null) for a level nothing reached."""
    if not values:
        return None
    return round(float(np.mean(np.asarray(values, dtype=np.float64))), SCORE_DECIMALS)
