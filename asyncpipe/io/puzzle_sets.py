"""The puzzle app's document, `puzzle_sets.json`: the batch as the app's upload script takes it.

    {"puzzleSets": {SET: {"4x4": {"SET_1": {puzzle}, ...}}},
     "setIndex":   {SET: {"totalCount", "puzzleIds", "sizeCounts", ...}}}

The app does not read `final_puzzles.json`; it reads this. What it relies on
(`asyncpipe.io.puzzle_sets_check` checks each rule on every run):

- a puzzle's `id` is `{setName}_{puzzleNumber}`, numbers 1..n without gaps;
- `words` are the tiles as a player first sees them: the categories' words,
  shuffled from `random_seed` and the puzzle number, so that no category sits
  in a row of the grid (a row that is one category would give it away);
- a category's `difficulty` is its measured level (`asyncpipe.puzzle.difficulty`),
  1 yellow .. 4 purple, not its position; `themeWord` is its theme;
  `similarity` is its theme fit, the mean cosine of its words to its theme;
- `createdAt` and `lastUpdated` are only there when the caller gives a time
  (`--created-at`, `SOURCE_DATE_EPOCH`): without one the file depends on the
  params and the seed alone, byte for byte.

Pure: it shapes the document; `asyncpipe.io.files` writes it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncpipe import __version__
from asyncpipe.errors import ConfigError
from asyncpipe.puzzle.assembly import Puzzle
from asyncpipe.puzzle.scoring import PuzzleScore

#: Decimal places of the figures, as in `final_puzzles.json`.
_DECIMALS = 6
GENERATED_BY = "asyncpipe"
#: How the groups were chosen and checked (README, "What it does", "Puzzle quality").
ALGORITHM = "typicality ranking, swap-margin group search, embedding solver"
#: Shuffles tried before a grid with a category in a row is taken as a bug: with two
#: groups or more, fewer than 1 shuffle in 100 puts one in a row.
_MAX_SHUFFLES = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def puzzle_sets_document(
    puzzles: Sequence[Puzzle],
    scores: Sequence[PuzzleScore],
    set_name: str,
    seed: int,
    created_at: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The app's document for one set: one entry per puzzle, in batch order.

    `scores` holds one score per puzzle (its levels and figures); `created_at`
    is milliseconds since the Unix epoch (a JavaScript timestamp, as the app
    stores it), or None to leave the times out; `metadata` goes into the set's
    index entry as it is.
    """
    if len(scores) != len(puzzles):
        raise ValueError(f"{len(puzzles)} puzzles but {len(scores)} scores")
    entries: dict[str, Any] = {}
    size = _size_key(puzzles)
    for number, (puzzle, score) in enumerate(zip(puzzles, scores, strict=True), start=1):
        puzzle_id = f"{set_name}_{number}"
        categories = [
            {
                "id": f"{puzzle_id}_cat_{position}",
                "themeWord": group.theme,
                "words": list(group.words),
                "difficulty": level,
                "similarity": round(fit, _DECIMALS),
            }
            for position, (group, level, fit) in enumerate(
                zip(puzzle.groups, score.group_levels, score.theme_fit, strict=True)
            )
        ]
        entry: dict[str, Any] = {
            "id": puzzle_id,
            "setName": set_name,
            "puzzleNumber": number,
            "gridSize": _row_width(puzzle),
            "difficulty": score.puzzle_level,
            "words": shuffled_tiles(puzzle, seed, number),
            "categories": categories,
        }
        if created_at is not None:
            entry["createdAt"] = created_at
        entry["metadata"] = {
            "avgSimilarity": round(sum(score.theme_fit) / len(score.theme_fit), _DECIMALS),
            # 1 - the solver's difficulty: 1 when the grouping stands out, 0 when
            # another split of the tiles is as good (see "Puzzle quality").
            "qualityScore": round(1.0 - score.difficulty, _DECIMALS),
            "generatedBy": GENERATED_BY,
            "algorithm": ALGORITHM,
            "batchGenerated": True,
        }
        entries[puzzle_id] = entry
    index: dict[str, Any] = {"totalCount": len(entries)}
    if created_at is not None:
        index["lastUpdated"] = created_at
    index.update(
        {
            "status": "active",
            "generatorVersion": __version__,
            "algorithm": ALGORITHM,
            "sizeCounts": {size: len(entries)} if entries else {},
            "availableSizes": [size] if entries else [],
            "puzzleIds": list(entries),
            "metadata": dict(metadata or {}),
        }
    )
    return {
        "puzzleSets": {set_name: {size: entries} if entries else {}},
        "setIndex": {set_name: index},
    }


def shuffled_tiles(puzzle: Puzzle, seed: int, number: int) -> list[str]:
    """The tiles in the order a player first sees them, the same for the same seed and number.

    Shuffled again (from the same generator, so still deterministic) while some
    row of the grid holds exactly one category's words.
    """
    tiles = puzzle.words
    width = _row_width(puzzle)
    # A string seed goes through SHA-512: the same order on every machine and run.
    generator = random.Random(f"asyncpipe-tiles:{seed}:{number}")
    groups = [frozenset(group.words) for group in puzzle.groups]
    for _ in range(_MAX_SHUFFLES):
        generator.shuffle(tiles)
        if len(groups) < 2 or not category_in_a_row(tiles, groups, width):
            return tiles
    raise RuntimeError(f"puzzle {number}: no shuffle keeps every category out of the rows")


def category_in_a_row(
    tiles: Sequence[str], groups: Sequence[frozenset[str]], width: int
) -> frozenset[str] | None:
    """The category whose words fill one row of the grid, if any."""
    for start in range(0, len(tiles), width):
        row = frozenset(tiles[start : start + width])
        if row in groups:
            return row
    return None


def creation_time(flag: str | None, environment: Mapping[str, str]) -> int | None:
    """When the batch was made, in milliseconds since the epoch, or None when not given.

    `--created-at` (ISO 8601; without a zone it is UTC) wins over the
    `SOURCE_DATE_EPOCH` variable (whole seconds, the reproducible-builds
    convention). The clock is never read: a file that carries a time carries
    the one it was given. Raises ConfigError naming the flag or the variable.
    """
    if flag is not None:
        try:
            moment = datetime.fromisoformat(flag)
        except ValueError:
            raise ConfigError(
                f"--created-at {flag!r}: expected an ISO 8601 time, "
                "such as 2025-01-31 or 2025-01-31T04:17:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # Whole milliseconds, exactly (a float timestamp can be off by one).
        return (moment - _EPOCH) // timedelta(milliseconds=1)
    epoch = environment.get("SOURCE_DATE_EPOCH")
    if epoch is None or epoch == "":
        return None
    if not epoch.isdigit():
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since 1970-01-01 UTC"
        )
    return int(epoch) * 1000


def _row_width(puzzle: Puzzle) -> int:
    """Tiles per row: a category's size (4 on the 4x4 grid)."""
    return len(puzzle.groups[0].words)


def _size_key(puzzles: Sequence[Puzzle]) -> str:
    """The app's name for the grid: "4x4" (rows x tiles per row)."""
    if not puzzles:
        return "4x4"
    puzzle = puzzles[0]
    return f"{len(puzzle.groups)}x{_row_width(puzzle)}"
