"""What makes a word fit for a puzzle grid, and when two words count as the same.

A grid must not hold "dance" and "dances", nor a group whose theme is "Birds"
hold "bird". Both checks reduce a word to a variant key (its Snowball stem,
lowercased), so plural, -ing, -ed and similar forms collide. This module is
pure and small so the candidate search and the assembly share one definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import Stemmer  # PyStemmer: the Snowball stemmers in C

_PUZZLE_WORD = re.compile(r"[a-z]+")
# Letters, with inner apostrophes (straight or typographic) kept: "Children's games".
_THEME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")

#: A theme word shorter than this is too generic to rule out the words it begins
#: ("art" would exclude "artist"; "card" rules out "cardboard").
_MIN_PREFIX_STEM = 4


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The shipped English stopword list."""
    text = resources.files("asyncpipe.data").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65_536)
def variant_key(word: str) -> str:
    """The key under which case and inflection variants of `word` collide."""
    return _stemmer().stemWord(word.lower())


def theme_words(theme: str) -> list[str]:
    """The lowercased words of a theme name ("Musical instruments" -> musical, instruments)."""
    return [match.group(0).lower() for match in _THEME_WORD.finditer(theme)]


def is_puzzle_word(word: str, min_length: int = 3) -> bool:
    """Lowercase ASCII letters only, long enough, and not a stopword."""
    return (
        len(word) >= min_length
        and _PUZZLE_WORD.fullmatch(word) is not None
        and word not in stopwords()
    )


def is_variant_of_theme(word: str, theme: str) -> bool:
    """True when `word` is a theme word or a form of one (bird, birds, birding for "Birds")."""
    return theme_variants(theme).covers(word)


class ThemeVariants:
    """The words of one theme name, prepared once to test many candidate words against."""

    __slots__ = ("_parts",)

    def __init__(self, theme: str) -> None:
        self._parts = tuple((part, variant_key(part)) for part in theme_words(theme))

    def covers(self, word: str) -> bool:
        key = variant_key(word)
        for part, part_key in self._parts:
            if word == part or key == part_key:
                return True
            # One word inside the other ("fishing" for "Fish" is no puzzle), but only
            # for stems long enough to mean something on their own.
            if len(part_key) >= _MIN_PREFIX_STEM and word.startswith(part_key):
                return True
            if len(key) >= _MIN_PREFIX_STEM and part.startswith(key):
                return True
        return False


@lru_cache(maxsize=4096)
def theme_variants(theme: str) -> ThemeVariants:
    return ThemeVariants(theme)


def distinct_by_variant(words: Iterable[str]) -> list[str]:
    """Keep the first word of each variant family, in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for word in words:
        key = variant_key(word)
        if key not in seen:
            seen.add(key)
            kept.append(word)
    return kept
