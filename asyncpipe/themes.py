"""Stage 1: read the theme source, filter it, and draw the themes of a batch.

The draw is deterministic from the seed, and it draws spare themes beyond the
ones the puzzles need: a theme that later yields too few words is replaced by
the next spare, so one weak theme never leaves a puzzle short.
"""

from __future__ import annotations

import codecs
import random
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from asyncpipe.config import PuzzleGeneration, Themes
from asyncpipe.errors import InputError


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
        return cls(
            themes=tuple(document["themes"]),
            spare_themes=tuple(document.get("spare_themes", ())),
            selection_method=document["selection_method"],
            random_seed=document["random_seed"],
            filters=document.get("filters", {}),
            source=document.get("source", ""),
            available_count=document.get("available_count", len(document["themes"])),
        )


def read_theme_source(path: Path | None) -> tuple[list[str], str]:
    """The themes of a source file (or of the built-in list), and a name for it.

    One theme per line; blank lines and lines starting with '#' are skipped,
    whitespace is collapsed and the text is NFC-normalised so the same theme
    typed two ways is one theme.
    """
    if path is None:
        text = resources.files("asyncpipe.data").joinpath("default_themes.txt").read_text("utf-8")
        name = "builtin"
    else:
        name = str(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path}: theme source not found") from None
        except IsADirectoryError:
            raise InputError(f"{path}: theme source is a directory, expected a text file") from None
        except OSError as error:
            raise InputError(f"{path}: cannot read theme source ({error.strerror})") from None
        if b"\x00" in raw:
            raise InputError(f"{path}: theme source looks binary (contains NUL bytes)")
        bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
        try:
            text = raw[bom:].decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(
                f"{path}: theme source is not UTF-8 text (bad byte at offset {bom + error.start})"
            ) from None
    themes = [_clean(line) for line in text.splitlines()]
    themes = [theme for theme in themes if theme and not theme.startswith("#")]
    if not themes:
        raise InputError(f"{name}: theme source holds no themes")
    return themes, name


def select_themes(
    available: list[str], source: str, themes: Themes, generation: PuzzleGeneration
) -> ThemeSelection:
    """Filter the available themes and draw those a batch needs, plus spares."""
    excluded = {_fold(name) for name in themes.exclude_categories}
    seen: set[str] = set()
    eligible: list[str] = []
    for theme in available:
        key = _fold(theme)
        if key in seen or key in excluded:
            continue
        if not themes.min_theme_length <= len(theme) <= themes.max_theme_length:
            continue
        if not any(character.isalpha() for character in theme):
            continue
        seen.add(key)
        eligible.append(theme)

    needed = generation.themes_needed
    if len(eligible) < needed:
        raise InputError(
            f"{source}: {generation.total_puzzle_count} puzzles need {needed} themes, "
            f"but only {len(eligible)} of {len(available)} pass the filters"
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


def _clean(line: str) -> str:
    return " ".join(unicodedata.normalize("NFC", line).split())


def _fold(theme: str) -> str:
    return theme.casefold()
