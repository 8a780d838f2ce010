"""Stage 1: read the theme source, filter it, and draw the themes of a batch.

The draw is deterministic from the seed, and it draws spare themes beyond the
ones the puzzles need: a theme that later yields too few words is replaced by
the next spare, so one weak theme never leaves a puzzle short.

Reading and cleaning the theme source is `asyncpipe.io.theme_source`'s job; this
module filters what it read and draws from it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from asyncpipe.errors import InputError
from asyncpipe.io.theme_source import MAX_LINE_WARNINGS, ThemeLines, shown
from asyncpipe.puzzle.history import History
from asyncpipe.puzzle.lexicon import is_wordplay_theme
from asyncpipe.settings.sections import PuzzleGeneration, Themes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThemeSelection:
    """The themes drawn for one batch, in the order puzzles will use them."""

    themes: tuple[str, ...]
    spare_themes: tuple[str, ...]
    selection_method: str
    #: None when the file read did not record it (`OPTIONAL_FIELDS`).
    random_seed: int | None
    filters: dict[str, Any]
    source: str
    available_count: int

    @property
    def all_themes(self) -> tuple[str, ...]:
        """Primary themes first, then spares, the order in which they are tried."""
        return self.themes + self.spare_themes

    def to_json(self) -> dict[str, Any]:
        return {
            "themes": list(self.themes),
            "spare_themes": list(self.spare_themes),
            "total_count": len(self.themes),
            "spare_count": len(self.spare_themes),
            "selection_method": self.selection_method,
            "random_seed": self.random_seed,
            "filters": self.filters,
            "source": self.source,
            "available_count": self.available_count,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ThemeSelection:
        """The selection `to_json` wrote, or an older pipeline's file of the same name.

        Only `themes` is required: the fields of `OPTIONAL_FIELDS` that a file lacks get
        fixed defaults (`defaulted_fields` names them), so the selection, and the
        checkpoint digest made from it, is the same every time the file is read. A
        document of another shape raises KeyError or TypeError whose text names what is
        missing ("'themes'", "a list of theme names under 'themes'"), for the caller to
        put after "missing".
        """
        if not isinstance(document, dict):
            raise TypeError(
                f"a JSON object at the top level (the file holds {_json_kind(document)})"
            )
        themes = _names(document, "themes", required=True)
        return cls(
            themes=themes,
            spare_themes=_names(document, "spare_themes", required=False),
            selection_method=str(document.get("selection_method", UNRECORDED)),
            random_seed=_seed(document),
            filters=document.get("filters", {}),
            source=document.get("source", ""),
            available_count=document.get("available_count", len(themes)),
        )

    @staticmethod
    def defaulted_fields(document: dict[str, Any]) -> list[str]:
        """The optional fields `from_json` fills in for this document, in file order."""
        return [key for key in OPTIONAL_FIELDS if key not in document]


#: What a selection file that does not say how it was drawn records as the method.
UNRECORDED = "unrecorded"

#: The fields of selected_themes.json that asyncpipe writes but never needs: an older
#: pipeline's file lacks some (its spares, filters, source), and some of its versions
#: lack the method and seed too. Nothing downstream reads the method, seed, filters or
#: source; no spares means a failed theme is not replaced.
OPTIONAL_FIELDS = (
    "spare_themes",
    "selection_method",
    "random_seed",
    "filters",
    "source",
    "available_count",
)


def _names(document: dict[str, Any], key: str, required: bool) -> tuple[str, ...]:
    value = document[key] if required else document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"a list of theme names under {key!r}")
    return tuple(value)


def _seed(document: dict[str, Any]) -> int | None:
    value = document.get("random_seed")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError("a whole number under 'random_seed'")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def select_themes(
    available: list[str],
    source: str,
    themes: Themes,
    generation: PuzzleGeneration,
    history: History | None = None,
    wordplay_share: float = 0.0,
) -> ThemeSelection:
    """Filter the available themes and draw those a batch needs, plus spares.

    Excluded categories and repeats of a theme (ignoring case) are dropped
    silently; a theme too short, too long or without a letter is dropped with a
    warning naming its line when `available` came from a file (`ThemeLines`).
    A theme is used at most once per batch: a source with fewer eligible themes
    than the puzzles need is an `InputError` saying how many there are.

    With a `history`, the draw (primary themes, then spares) takes the categories
    not used in the last `themes.avoid_recent_batches` batches first, in the seeded
    order, then the recent ones, least recently used first: a recent category comes
    back only when the others run out, and the count of eligible themes, hence what
    the batch can make, does not change.

    Wordplay themes ("FIRE ___", `is_wordplay_theme`) are not drawn like the others:
    `wordplay_share` of the puzzles get one, as their last theme (`wordplay_puzzles`),
    drawn from the wordplay themes in their own seeded order. They never serve as
    spares, so a replaced theme never turns a puzzle into a second wordplay one.
    """
    excluded = {_fold(name) for name in themes.exclude_categories}
    line_numbers = available.line_numbers if isinstance(available, ThemeLines) else None
    seen: set[str] = set()
    eligible: list[str] = []
    dropped: Counter[str] = Counter()
    warnings: list[tuple[int | None, str]] = []
    for position, theme in enumerate(available):
        key = _fold(theme)
        if key in excluded:
            dropped["excluded by themes.exclude_categories"] += 1
            continue
        problem = _length_problem(theme, themes)
        if problem is None and not any(character.isalpha() for character in theme):
            problem = "no letters", f"no letters in {shown(theme)}"
        if problem is not None:
            dropped[problem[0]] += 1
            warnings.append((line_numbers[position] if line_numbers else None, problem[1]))
            continue
        if key in seen:
            dropped["repeated"] += 1
            continue
        seen.add(key)
        eligible.append(theme)
    _warn_dropped(source, warnings)

    needed = generation.themes_needed
    ordered = [theme for theme in eligible if not is_wordplay_theme(theme)]
    wordplay = [theme for theme in eligible if is_wordplay_theme(theme)]
    with_wordplay = wordplay_puzzles(generation.total_puzzle_count, wordplay_share)
    with_wordplay = with_wordplay[: len(wordplay)]
    usable = len(ordered) + len(with_wordplay)
    if usable < needed:
        raise InputError(_too_few_themes(source, usable, len(available), dropped, generation))
    if generation.theme_selection_method == "random":
        random.Random(generation.random_seed).shuffle(ordered)
        # Its own stream, so the ordinary draw does not move with the wordplay list.
        random.Random(f"wordplay-{generation.random_seed}").shuffle(wordplay)
    if history is not None and history.batches:
        ordered = history.recency_order(ordered, themes.avoid_recent_batches)
        wordplay = history.recency_order(wordplay, themes.avoid_recent_batches)
    ordered = _place_wordplay(ordered, wordplay, with_wordplay, generation)
    # At least one puzzle's worth of spares, however small the batch.
    spare_target = max(
        generation.themes_per_puzzle, round(needed * generation.spare_theme_fraction)
    )
    spares = max(0, min(len(ordered) - needed, spare_target))
    if history is not None and history.batches:
        recent = sum(
            history.is_recent(theme, themes.avoid_recent_batches)
            for theme in ordered[: needed + spares]
        )
        log.info(
            "History: %d published batches; %d of the %d themes drawn were used in the last "
            "%d of them (the least recently used come back first)",
            len(history.batches),
            recent,
            needed + spares,
            themes.avoid_recent_batches,
        )
    return ThemeSelection(
        themes=tuple(ordered[:needed]),
        spare_themes=tuple(ordered[needed : needed + spares]),
        selection_method=generation.theme_selection_method,
        random_seed=generation.random_seed,
        filters={
            "exclude_categories": list(themes.exclude_categories),
            "min_theme_length": themes.min_theme_length,
            "max_theme_length": themes.max_theme_length,
        },
        source=source,
        available_count=usable,
    )


def wordplay_puzzles(puzzles: int, share: float) -> list[int]:
    """The puzzles (0-based) that get a wordplay theme: puzzle i when
    floor((i + 1) * share) > floor(i * share), so that every prefix of the batch holds
    its share, rounded down (a share of 0.25 gives puzzles 3, 7, 11, ...)."""
    return [i for i in range(puzzles) if int((i + 1) * share) > int(i * share)]


def _place_wordplay(
    ordinary: list[str], wordplay: list[str], puzzles: list[int], generation: PuzzleGeneration
) -> list[str]:
    """The draw order: each puzzle's themes in turn, a puzzle of `puzzles` taking one
    fewer ordinary theme and a wordplay theme last; the unused ordinary themes after,
    as spares. The assembly takes themes in this order, so the wordplay theme lands
    in its puzzle unless it cannot fill a group there (then it is held over)."""
    per_puzzle = generation.themes_per_puzzle
    chosen = set(puzzles)
    drawn = iter(wordplay)
    placed: list[str] = []
    taken = 0
    for puzzle in range(generation.total_puzzle_count):
        ordinary_count = per_puzzle - (puzzle in chosen)
        placed.extend(ordinary[taken : taken + ordinary_count])
        taken += ordinary_count
        if puzzle in chosen:
            placed.append(next(drawn))
    return placed + ordinary[taken:]


def _length_problem(theme: str, themes: Themes) -> tuple[str, str] | None:
    """(reason counted, warning) when the theme is outside the length limits, else None."""
    length = len(theme)
    if length > themes.max_theme_length:
        return "too long", (
            f"theme of {length} characters is longer than themes.max_theme_length "
            f"({themes.max_theme_length}): {shown(theme)}"
        )
    if length < themes.min_theme_length:
        return "too short", (
            f"theme {theme!r} is shorter than themes.min_theme_length ({themes.min_theme_length})"
        )
    return None


def _warn_dropped(source: str, warnings: list[tuple[int | None, str]]) -> None:
    for number, problem in warnings[:MAX_LINE_WARNINGS]:
        where = f"{source}, line {number}" if number is not None else source
        log.warning("%s: %s; skipped", where, problem)
    if len(warnings) > MAX_LINE_WARNINGS:
        log.warning(
            "%s: %d more themes skipped for their length or for having no letters",
            source,
            len(warnings) - MAX_LINE_WARNINGS,
        )


def _too_few_themes(
    source: str, eligible: int, available: int, dropped: Counter[str], generation: PuzzleGeneration
) -> str:
    per_puzzle = generation.themes_per_puzzle
    reasons = ", ".join(f"{count} {reason}" for reason, count in dropped.most_common())
    possible = eligible // per_puzzle
    remedy = (
        f"ask for at most {possible} puzzles (--count, puzzle_generation.total_puzzle_count) "
        "or add themes to the source"
        if possible
        else "add themes to the source"
    )
    return (
        f"{source}: {generation.total_puzzle_count} puzzles need {generation.themes_needed} "
        f"themes ({per_puzzle} per puzzle), but only {eligible} of {available} pass the "
        f"filters{f' (left out: {reasons})' if reasons else ''}; a theme is used at most once "
        f"per batch (reusing themes is not supported): {remedy} (themes.source)"
    )


def _fold(theme: str) -> str:
    return theme.casefold()
