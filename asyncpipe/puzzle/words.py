"""What makes a word fit for a puzzle grid, and when two words count as the same.

A grid must not hold "dance" and "dances", nor "goose" and "geese", nor a group whose
theme is "Birds" hold "bird". Both checks reduce a word to a variant key, so plurals
(regular, -es and irregular) and inflections (-ing, -ed, ran, sang) collide. This module
is pure and small so the candidate search and the assembly share one definition.

How a key is made (`VariantKeys`), in order:

1. WordNet's exception lists first (geese -> goose, mice -> mouse, ran -> run, went ->
   go), unless the word is a noun in its own right (a lexicon member, or one of a few
   everyday nouns): "dove", "saw", "rose" and "felt" are tiles of their own, not forms
   of dive, see, rise and feel.
2. A few regular plurals WordNet derives by rule rather than listing (women -> woman,
   firemen -> fireman; people -> person).
3. The Snowball stemmer (dances, dancing -> danc).
4. One correction to the stemmer: it keeps the "e" of a short "-se" stem ("buses" ->
   "buse", "rose" -> "rose") but not of "bus", so a final "-se" loses its "e" and
   bus/buses, gas/gases, rose/roses each collide, while bus and base stay apart.

Where the irregular table comes from: `variant_key` uses `shipped_variant_keys()`, a
cached accessor that reads the shipped lexicon (`asyncpipe.io.lexicon_file`) on first
use, in whichever process asks, and never again. The import is inside the accessor, so
importing this module reads nothing; tests and the lexicon build pass their own table
to `VariantKeys` instead.

Not for: meaning. A form WordNet lists for two bases takes the first ("leaves" is leaf,
not leave); a merge too many only keeps two tiles apart, never puts a wrong word in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources

import Stemmer  # PyStemmer: the Snowball stemmers in C

_PUZZLE_WORD = re.compile(r"[a-z]+")
# Letters, with inner apostrophes (straight or typographic) kept: "Children's games".
_THEME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")

#: A theme word shorter than this is too generic to rule out the words it begins
#: ("art" would exclude "artist"; "card" rules out "cardboard").
_MIN_PREFIX_STEM = 4
#: A theme word this long rules out the compounds it ends ("cat": bobcat, wildcat).
_MIN_SUFFIX_STEM = 3

#: Plurals that WordNet's morphology derives by rule, not from noun.exc, and a few the
#: stemmer misses; each maps to its singular.
_REGULAR_FORMS: Mapping[str, str] = {
    "people": "person",
    "women": "woman",
    "quizzes": "quiz",
    "lenses": "lens",
}
#: Words in -men that are not plurals of a -man word whose "-man" form is another word
#: ("omen" is not the plural of Oman, nor "germen" of german).
_NOT_MEN_PLURALS = frozenset({"amen", "dolmen", "germen", "omen", "ramen", "semen", "yemen"})
#: Everyday words that the exception lists give as forms of another (rose -> rise, ground
#: -> grind, dive -> diva): on a grid they are themselves, as lexicon members are.
_NOUNS_NOT_FORMS = frozenset(
    {"bit", "bore", "dive", "dove", "felt", "ground", "left"}
    | {"rose", "saw", "shot", "spoke", "stove", "wound"}
)

KeyFunction = Callable[[str], str]


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The shipped English stopword list."""
    text = resources.files("asyncpipe.data").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


class VariantKeys:
    """The variant key of any word, given WordNet's irregular forms (see the module doc).

    `irregular_forms` maps an inflected form to its base forms, first preferred
    ({"geese": ("goose",)}); `own_words` are words that are bases in their own right
    even though the table lists them as forms ("dove", "saw"). Calling the object gives
    a word's key.
    """

    __slots__ = ("_bases", "_own_words")

    def __init__(
        self,
        irregular_forms: Mapping[str, Sequence[str]],
        own_words: Collection[str] = frozenset(),
    ) -> None:
        self._bases = {form: bases[0] for form, bases in irregular_forms.items() if bases}
        self._own_words = _NOUNS_NOT_FORMS | frozenset(own_words)

    def base(self, word: str) -> str:
        """The word's base form by the tables and rules, before stemming (geese -> goose)."""
        word = word.lower()
        if word not in self._own_words and word in self._bases:
            return self._bases[word]
        if word in _REGULAR_FORMS:
            return _REGULAR_FORMS[word]
        if word.endswith("men") and len(word) > 4 and word not in _NOT_MEN_PLURALS:
            return word[:-3] + "man"
        return word

    def __call__(self, word: str) -> str:
        key = _stemmer().stemWord(_american_spelling(self.base(word)))
        # Snowball keeps the e of a short -se stem (buses -> buse, rose -> rose) but
        # bus has none: dropping it makes both forms one key.
        return key[:-1] if key.endswith("se") else key


#: British spellings with one American counterpart: metre, meter; colour, color; sabre,
#: saber; catalogue, catalog; realise, realize. Long words only: "acre", "ogre" and
#: "four" have no counterpart, and are short.
_BRITISH_SPELLINGS = (
    (re.compile(r"(?<=[^aeiou])re(s?)$"), r"er\1", 5),
    (re.compile(r"our(s?)$"), r"or\1", 6),
    (re.compile(r"ogue(s?)$"), r"og\1", 6),
    (re.compile(r"(?<=[a-z]{3})is(e|es|ed|ing|ation|ations)$"), r"iz\1", 6),
    (re.compile(r"(?<=[a-z]{3})ys(e|es|ed|ing)$"), r"yz\1", 6),
)


def _american_spelling(word: str) -> str:
    """One spelling for both sides of the Atlantic, so that metre and meter collide."""
    for pattern, replacement, shortest in _BRITISH_SPELLINGS:
        if len(word) >= shortest:
            word = pattern.sub(replacement, word)
    return word


@lru_cache(maxsize=1)
def shipped_variant_keys() -> VariantKeys:
    """Variant keys with the shipped lexicon's irregular forms (read once per process)."""
    from asyncpipe.io.lexicon_file import load_lexicon  # here: importing reads no file

    lexicon = load_lexicon()
    members = {
        word
        for category in lexicon.categories.values()
        for word in (*category.members, *category.secondary)
    }
    return VariantKeys(lexicon.irregular_forms, members)


@lru_cache(maxsize=65_536)
def variant_key(word: str) -> str:
    """The key under which case, plural and inflection variants of `word` collide."""
    return shipped_variant_keys()(word)


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

    __slots__ = ("_key", "_parts")

    def __init__(self, theme: str, key: KeyFunction = variant_key) -> None:
        # `key` is the shipped variant_key but for the lexicon build, which has its own.
        self._key = key
        self._parts = tuple((part, key(part)) for part in theme_words(theme))

    def covers(self, word: str) -> bool:
        key = self._key(word)
        for part, part_key in self._parts:
            if word == part or key == part_key:
                return True
            # One word inside the other ("fishing" for "Fish" is no puzzle), but only
            # for stems long enough to mean something on their own.
            if len(part_key) >= _MIN_PREFIX_STEM and word.startswith(part_key):
                return True
            if len(key) >= _MIN_PREFIX_STEM and part.startswith(key):
                return True
            # A compound ending in the theme word gives the group away: tugboat under
            # Boats, rattlesnake under Snakes, bobcat under Cats.
            if (
                len(part_key) >= _MIN_SUFFIX_STEM
                and len(word) > len(part_key) + 1
                and (word.endswith(part_key) or key.endswith(part_key))
            ):
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
