"""Stage 1: read the theme source, filter it, and draw the themes of a batch.

The draw is deterministic from the seed, and it draws spare themes beyond the
ones the puzzles need: a theme that later yields too few words is replaced by
the next spare, so one weak theme never leaves a puzzle short.

A theme source is UTF-8 text, one theme per line (LF, CRLF or CR line ends; a
byte order mark is ignored). Each line is cleaned the same way: NFC
normalisation (a theme typed with combining accents is the same theme as one
typed with precomposed letters), invisible format characters removed (zero-width
spaces, soft hyphens, byte order marks, bidirectional controls; a zero-width
joiner or non-joiner is kept only between two non-ASCII letters, where some
scripts need it), and runs of whitespace collapsed to one space. Blank lines
and lines starting with '#' are skipped silently. A line that cannot be a theme
is skipped with a warning naming its line number: one holding control
characters, private-use characters or U+FFFD (text damaged by an earlier
decoding), one without a letter, and one shorter than `themes.min_theme_length`
or longer than `themes.max_theme_length` characters (at most
`asyncpipe.config.MAX_THEME_LENGTH`, 200). A file that is not UTF-8 text, or
holds no theme at all, is an `InputError`; so is a source with fewer usable
themes than the batch needs (a theme is used at most once per batch).
"""

from __future__ import annotations

import codecs
import logging
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from asyncpipe.config import PuzzleGeneration, Themes
from asyncpipe.errors import InputError

log = logging.getLogger("asyncpipe")

#: Unusable lines named one by one in the log; the rest are counted in one more line.
MAX_LINE_WARNINGS = 10
#: Characters of a skipped theme shown in a warning.
_SHOWN = 40
_ZERO_WIDTH_JOINERS = frozenset("\u200c\u200d")


class ThemeLines(list[str]):
    """The themes of a source file, with the line each came from (1-based)."""

    def __init__(self, themes: list[str], line_numbers: list[int]) -> None:
        super().__init__(themes)
        self.line_numbers = line_numbers


@dataclass(frozen=True)
class ThemeSelection:
    """The themes drawn for one batch, in the order puzzles will use them."""

    themes: tuple[str, ...]
    spare_themes: tuple[str, ...]
    selection_method: str
    random_seed: int
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
        """The selection `to_json` wrote.

        A document of another shape raises KeyError or TypeError whose text names
        what is missing ("'themes'", "a list of theme names under 'themes'"), for
        the caller to put after "missing".
        """
        if not isinstance(document, dict):
            raise TypeError(
                f"a JSON object at the top level (the file holds {_json_kind(document)})"
            )
        return cls(
            themes=_names(document, "themes", required=True),
            spare_themes=_names(document, "spare_themes", required=False),
            selection_method=str(document["selection_method"]),
            random_seed=_whole_number(document, "random_seed"),
            filters=document.get("filters", {}),
            source=document.get("source", ""),
            available_count=document.get("available_count", len(document["themes"])),
        )


def _names(document: dict[str, Any], key: str, required: bool) -> tuple[str, ...]:
    value = document[key] if required else document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"a list of theme names under {key!r}")
    return tuple(value)


def _whole_number(document: dict[str, Any], key: str) -> int:
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a whole number under {key!r}")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def read_theme_source(path: Path | None) -> tuple[list[str], str]:
    """The themes of a source file (or of the built-in list), and a name for it.

    One theme per line; see the module's docstring for how lines are cleaned and
    which are skipped. Themes read from a file keep their line numbers
    (`ThemeLines`), so that `select_themes` can name the line of a theme it drops.
    """
    if path is None:
        text = resources.files("asyncpipe.data").joinpath("default_themes.txt").read_text("utf-8")
        name = "builtin"
    else:
        name = str(path)
        text = _decode(path, _read_bytes(path))
    themes: list[str] = []
    line_numbers: list[int] = []
    unusable: list[tuple[int, str]] = []
    for number, line in enumerate(_lines(text), start=1):
        theme = clean_theme(line)
        if not theme or theme.startswith("#"):
            continue
        problem = _unusable(theme)
        if problem is not None:
            unusable.append((number, problem))
            continue
        themes.append(theme)
        line_numbers.append(number)
    _warn_skipped(name, unusable)
    if not themes:
        detail = f" ({len(unusable)} lines skipped as unusable)" if unusable else ""
        raise InputError(
            f"{name}: theme source holds no themes{detail}; expected UTF-8 text with one "
            "theme per line (themes.source)"
        )
    return ThemeLines(themes, line_numbers), name


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: theme source not found (themes.source)") from None
    except IsADirectoryError:
        raise InputError(
            f"{path}: theme source is a directory, expected a text file (themes.source)"
        ) from None
    except OSError as error:
        raise InputError(
            f"{path}: cannot read theme source ({error.strerror or error}) (themes.source)"
        ) from None


def _decode(path: Path, raw: bytes) -> str:
    for mark, encoding in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if raw.startswith(mark):
            raise InputError(
                f"{path}: theme source is {encoding} text; save it as UTF-8 (themes.source)"
            )
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"{path}: theme source looks binary (NUL byte at line {_line_of(raw, nul)}, "
            f"offset {nul}); expected UTF-8 text, one theme per line (themes.source)"
        )
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = bom + error.start
        raise InputError(
            f"{path}: theme source is not UTF-8 text (bad byte 0x{raw[offset]:02x} at line "
            f"{_line_of(raw, offset)}, offset {offset}); save it as UTF-8 (themes.source)"
        ) from None


def _line_of(raw: bytes, offset: int) -> int:
    """The 1-based line of a byte offset, counting LF, CRLF and lone CR as line ends."""
    before = raw[:offset]
    return before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1


def _lines(text: str) -> list[str]:
    """Lines as a text editor numbers them: LF, CRLF and lone CR end a line, nothing else.

    (`str.splitlines` also splits at form feeds, NEL and U+2028, which would shift
    the line numbers the warnings give.)
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def clean_theme(line: str) -> str:
    """NFC, invisible format characters removed, whitespace collapsed (module docstring)."""
    text = unicodedata.normalize("NFC", line)
    if any(unicodedata.category(character) == "Cf" for character in text):
        text = _without_format_characters(text)
    return " ".join(text.split())


def _without_format_characters(text: str) -> str:
    kept: list[str] = []
    for position, character in enumerate(text):
        if unicodedata.category(character) != "Cf":
            kept.append(character)
        elif character in _ZERO_WIDTH_JOINERS and 0 < position < len(text) - 1:
            before, after = text[position - 1], text[position + 1]
            if before.isalpha() and after.isalpha() and not (before + after).isascii():
                kept.append(character)
    return "".join(kept)


def _unusable(theme: str) -> str | None:
    """Why a cleaned line cannot be a theme, or None if it can."""
    for character in theme:
        category = unicodedata.category(character)
        if category == "Cc":
            return f"control character U+{ord(character):04X}"
        if category == "Co":
            return f"private-use character U+{ord(character):04X}"
        if character == "\ufffd":
            return "replacement character U+FFFD (the text was damaged by an earlier decoding)"
    if not any(character.isalpha() for character in theme):
        return f"no letters in {_shown(theme)}"
    return None


def _warn_skipped(source: str, skipped: list[tuple[int, str]]) -> None:
    for number, problem in skipped[:MAX_LINE_WARNINGS]:
        log.warning("%s, line %d: %s; line skipped", source, number, problem)
    if len(skipped) > MAX_LINE_WARNINGS:
        rest = skipped[MAX_LINE_WARNINGS:]
        log.warning(
            "%s: %d more unusable lines skipped (lines %s%s)",
            source,
            len(rest),
            ", ".join(str(number) for number, _ in rest[:20]),
            ", ..." if len(rest) > 20 else "",
        )


def _shown(theme: str) -> str:
    """The theme quoted for a log line: shortened, escaped if it starts with a combining mark."""
    short = theme if len(theme) <= _SHOWN else theme[:_SHOWN] + "..."
    return ascii(short) if unicodedata.category(short[0]).startswith("M") else repr(short)


def select_themes(
    available: list[str], source: str, themes: Themes, generation: PuzzleGeneration
) -> ThemeSelection:
    """Filter the available themes and draw those a batch needs, plus spares.

    Excluded categories and repeats of a theme (ignoring case) are dropped
    silently; a theme too short, too long or without a letter is dropped with a
    warning naming its line when `available` came from a file (`ThemeLines`).
    A theme is used at most once per batch: a source with fewer eligible themes
    than the puzzles need is an `InputError` saying how many there are.
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
            problem = "no letters", f"no letters in {_shown(theme)}"
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
    if len(eligible) < needed:
        raise InputError(
            _too_few_themes(source, len(eligible), len(available), dropped, generation)
        )
    ordered = list(eligible)
    if generation.theme_selection_method == "random":
        random.Random(generation.random_seed).shuffle(ordered)
    # At least one puzzle's worth of spares, however small the batch.
    spare_target = max(
        generation.themes_per_puzzle, round(needed * generation.spare_theme_fraction)
    )
    spares = min(len(ordered) - needed, spare_target)
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
        available_count=len(eligible),
    )


def _length_problem(theme: str, themes: Themes) -> tuple[str, str] | None:
    """(reason counted, warning) when the theme is outside the length limits, else None."""
    length = len(theme)
    if length > themes.max_theme_length:
        return "too long", (
            f"theme of {length} characters is longer than themes.max_theme_length "
            f"({themes.max_theme_length}): {_shown(theme)}"
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
