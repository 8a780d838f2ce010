"""Reading a theme source: a text file of themes, one per line, cleaned line by line.

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
decoding), and one without a letter. A file that is not UTF-8 text, or holds
no theme at all, is an `InputError`.

The length limits (`themes.min_theme_length`, `themes.max_theme_length`, at
most `asyncpipe.settings.sections.MAX_THEME_LENGTH`), the exclusions and the draw are
`asyncpipe.stages.themes`' job.
"""

from __future__ import annotations

import codecs
import logging
import unicodedata
from pathlib import Path

from asyncpipe.errors import InputError
from asyncpipe.io.files import read_input
from asyncpipe.io.lexicon_file import load_lexicon

log = logging.getLogger(__name__)

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


def read_theme_source(path: Path | None) -> tuple[list[str], str]:
    """The themes of a source file (or the lexicon's categories, "builtin"), and a name for it.

    One theme per line; see the module's docstring for how lines are cleaned and
    which are skipped. Themes read from a file keep their line numbers
    (`ThemeLines`), so that `select_themes` can name the line of a theme it drops.
    """
    if path is None:
        # The built-in themes are the lexicon's categories: each names its members.
        text = "\n".join(load_lexicon().categories)
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
    return read_input(
        path,
        missing=f"{path}: theme source not found (themes.source)",
        directory=f"{path}: theme source is a directory, expected a text file (themes.source)",
        unreadable=lambda error: (
            f"{path}: cannot read theme source ({error.strerror or error}) (themes.source)"
        ),
    )


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
        return f"no letters in {shown(theme)}"
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


def shown(theme: str) -> str:
    """The theme quoted for a log line: shortened, escaped if it starts with a combining mark."""
    short = theme if len(theme) <= _SHOWN else theme[:_SHOWN] + "..."
    return ascii(short) if unicodedata.category(short[0]).startswith("M") else repr(short)
