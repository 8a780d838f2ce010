"""The rules the puzzle app relies on in `puzzle_sets.json`, checked on a document.

`validate_puzzle_sets` returns the problems it finds, one sentence each naming
the puzzle and the field; an empty list means the app can load the file.
It is written from the rules (README, "The app's file"), not from the writer
(`asyncpipe.io.puzzle_sets`), so that it catches the writer's mistakes: every
run checks its own document before writing it, and
`asyncpipe validate-sets FILE` checks any file, ours or another converter's.

Not checked: that a category's level is the measured one (the document does
not hold the figures; the tests compare it with `final_puzzles.json`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from asyncpipe.settings.sections import SET_NAME_PATTERN

_SET_NAME = re.compile(SET_NAME_PATTERN)
_LEVELS = (1, 2, 3, 4)
_PUZZLE_KEYS = ("id", "setName", "puzzleNumber", "gridSize", "difficulty", "words", "categories")
_INDEX_KEYS = (
    "totalCount",
    "status",
    "generatorVersion",
    "algorithm",
    "sizeCounts",
    "availableSizes",
    "puzzleIds",
)


def validate_puzzle_sets(document: Any) -> list[str]:
    """Every broken rule of the app's document, in document order; [] when it is valid."""
    problems: list[str] = []
    if not isinstance(document, dict):
        return ["the document is not a JSON object"]
    sets, index = document.get("puzzleSets"), document.get("setIndex")
    if not isinstance(sets, dict) or not isinstance(index, dict):
        return ["the document needs the objects puzzleSets and setIndex"]
    if set(sets) != set(index):
        problems.append(f"puzzleSets holds the sets {sorted(sets)} but setIndex {sorted(index)}")
    for name, sizes in sets.items():
        if not isinstance(name, str) or not _SET_NAME.fullmatch(name):
            problems.append(f"set name {name!r} does not match {SET_NAME_PATTERN}")
        if not isinstance(sizes, dict):
            problems.append(f"puzzleSets.{name} is not an object of grid sizes")
            continue
        puzzles = _check_set(name, sizes, problems)
        if isinstance(index.get(name), dict):
            _check_index(name, index[name], sizes, puzzles, problems)
        elif name in index:
            problems.append(f"setIndex.{name} is not an object")
    return problems


def _check_set(name: str, sizes: dict[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """The set's puzzles (checked one by one), and the rules across them."""
    puzzles: list[dict[str, Any]] = []
    for size, entries in sizes.items():
        if not isinstance(entries, dict):
            problems.append(f"puzzleSets.{name}.{size} is not an object of puzzles")
            continue
        for key, puzzle in entries.items():
            where = f"puzzle {key}"
            if not isinstance(puzzle, dict):
                problems.append(f"{where}: not an object")
                continue
            missing = [field for field in _PUZZLE_KEYS if field not in puzzle]
            if missing:
                problems.append(f"{where}: missing {', '.join(missing)}")
                continue
            puzzles.append(puzzle)
            _check_puzzle(name, size, key, puzzle, problems)
    numbers = sorted(p["puzzleNumber"] for p in puzzles if isinstance(p["puzzleNumber"], int))
    if numbers != list(range(1, len(puzzles) + 1)):
        problems.append(
            f"set {name}: puzzle numbers must run 1..{len(puzzles)} without gaps or repeats, "
            f"got {_shown(numbers)}"
        )
    created = {("createdAt" in puzzle) for puzzle in puzzles}
    if len(created) > 1:
        problems.append(f"set {name}: createdAt is on some puzzles and not on others")
    return puzzles


def _check_puzzle(
    name: str, size: str, key: str, puzzle: dict[str, Any], problems: list[str]
) -> None:
    where = f"puzzle {key}"
    number = puzzle["puzzleNumber"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        problems.append(f"{where}: puzzleNumber {number!r} is not a whole number from 1")
    if puzzle["id"] != key:
        problems.append(f"{where}: id {puzzle['id']!r} differs from its key")
    if puzzle["id"] != f"{name}_{number}":
        problems.append(f"{where}: id {puzzle['id']!r} is not {name}_{number} (setName_number)")
    if puzzle["setName"] != name:
        problems.append(f"{where}: setName {puzzle['setName']!r} is not its set, {name!r}")
    if puzzle["difficulty"] not in _LEVELS:
        problems.append(f"{where}: difficulty {puzzle['difficulty']!r} is not a level 1..4")
    if "createdAt" in puzzle and not _is_timestamp(puzzle["createdAt"]):
        problems.append(f"{where}: createdAt {puzzle['createdAt']!r} is not a timestamp in ms")
    categories = puzzle["categories"]
    words = puzzle["words"]
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        problems.append(f"{where}: categories is not a list of objects")
        return
    if not _is_word_list(words):
        problems.append(f"{where}: words is not a list of words")
        return
    grouped = [
        _check_category(where, key, position, category, problems)
        for position, category in enumerate(categories)
    ]
    groups = [group for group in grouped if group is not None]
    _check_levels(where, categories, problems)
    _check_tiles(where, size, puzzle["gridSize"], words, groups, problems)


def _check_category(
    where: str, key: str, position: int, category: dict[str, Any], problems: list[str]
) -> list[str] | None:
    """The category's words when they are a list of words; its problems noted."""
    expected = f"{key}_cat_{position}"
    if category.get("id") != expected:
        problems.append(
            f"{where}: category {position} has id {category.get('id')!r}, not {expected}"
        )
    theme = category.get("themeWord")
    if not isinstance(theme, str) or not theme.strip() or re.fullmatch(r"Theme \d+", theme):
        problems.append(f"{where}: category {position} has no theme name (themeWord {theme!r})")
    similarity = category.get("similarity")
    if not isinstance(similarity, int | float) or isinstance(similarity, bool):
        problems.append(f"{where}: category {position} similarity {similarity!r} is not a number")
    words: Any = category.get("words")
    if not _is_word_list(words):
        problems.append(f"{where}: category {position} words is not a list of words")
        return None
    return list(words)


def _check_levels(where: str, categories: list[dict[str, Any]], problems: list[str]) -> None:
    levels: list[Any] = [category.get("difficulty") for category in categories]
    if any(level not in _LEVELS for level in levels):
        problems.append(f"{where}: category difficulties {levels} are not all levels 1..4")
    elif len(categories) == len(_LEVELS) and sorted(levels) != list(_LEVELS):
        problems.append(f"{where}: category difficulties {levels} do not use each of 1..4 once")


def _check_tiles(
    where: str,
    size: str,
    grid_size: Any,
    words: list[str],
    groups: list[list[str]],
    problems: list[str],
) -> None:
    repeated = [
        word for word, count in Counter(word.casefold() for word in words).items() if count > 1
    ]
    if repeated:
        problems.append(f"{where}: words repeats {_shown(repeated)} (ignoring case)")
    union = Counter(word for group in groups for word in group)
    if Counter(words) != union:
        extra = sorted((Counter(words) - union).elements())
        absent = sorted((union - Counter(words)).elements())
        problems.append(
            f"{where}: words are not the categories' words "
            f"(not in a category: {_shown(extra)}; not on the grid: {_shown(absent)})"
        )
    if not isinstance(grid_size, int) or isinstance(grid_size, bool) or grid_size < 1:
        problems.append(f"{where}: gridSize {grid_size!r} is not a whole number")
        return
    rows = f"{len(words) // grid_size}x{grid_size}"
    if len(words) % grid_size or rows != size:
        problems.append(f"{where}: {len(words)} words in rows of {grid_size} do not make {size}")
    members = [frozenset(group) for group in groups]
    for start in range(0, len(words), grid_size):
        row = frozenset(words[start : start + grid_size])
        if len(members) > 1 and row in members:
            problems.append(
                f"{where}: row {start // grid_size + 1} is one whole category "
                f"({', '.join(words[start : start + grid_size])}): the words are not shuffled"
            )


def _check_index(
    name: str,
    entry: dict[str, Any],
    sizes: dict[str, Any],
    puzzles: list[dict[str, Any]],
    problems: list[str],
) -> None:
    where = f"setIndex.{name}"
    missing = [field for field in _INDEX_KEYS if field not in entry]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")
        return
    ids = [puzzle["id"] for puzzle in puzzles]
    if entry["totalCount"] != len(puzzles):
        problems.append(f"{where}: totalCount {entry['totalCount']!r} but {len(puzzles)} puzzles")
    if entry["status"] != "active":
        problems.append(f"{where}: status {entry['status']!r} is not 'active'")
    if entry["puzzleIds"] != ids:
        problems.append(f"{where}: puzzleIds are not the set's puzzles in order")
    counts = {size: len(entries) for size, entries in sizes.items() if isinstance(entries, dict)}
    if entry["sizeCounts"] != counts:
        problems.append(f"{where}: sizeCounts {entry['sizeCounts']!r}, the set holds {counts}")
    if entry["availableSizes"] != list(counts):
        problems.append(
            f"{where}: availableSizes {entry['availableSizes']!r} is not {list(counts)}"
        )
    stamped = bool(puzzles) and all("createdAt" in puzzle for puzzle in puzzles)
    if ("lastUpdated" in entry) != stamped and puzzles:
        problems.append(
            f"{where}: lastUpdated must be there exactly when the puzzles have createdAt"
        )
    if "lastUpdated" in entry and not _is_timestamp(entry["lastUpdated"]):
        problems.append(f"{where}: lastUpdated {entry['lastUpdated']!r} is not a timestamp in ms")


def _is_word_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(w, str) and w.strip() for w in value)


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(values: list[Any], limit: int = 6) -> str:
    if not values:
        return "none"
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return ", ".join(map(str, values[:limit])) + more
