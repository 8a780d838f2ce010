"""Which words are members of which categories: the lexicon as a pure, frozen value.

A group's four words must be what its theme says ("Trees: oak, maple, birch, pine"),
so candidate search asks the lexicon for a theme's members, and assembly asks which
categories a word belongs to and how much two themes' members overlap (two themes
sharing many members must not share a puzzle). The lexicon also carries WordNet's
irregular forms (geese -> goose, ran -> run) for variant detection.

This module does no I/O: `asyncpipe.io.lexicon_file` reads the shipped data file into
a `Lexicon`, and tests build small ones by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Category:
    """One category: its display name ("Dog breeds"), members, and where they came from.

    `members` are the words whose usual meaning is the category's, most frequent first.
    `secondary` are members only by a less usual sense ("bass" in Fish, whose first
    senses are musical): true members, but a player may not see them as such, so they
    suit red herrings better than plain groups. `aliases` are other names a theme line
    may use for the category ("Clothing" for "Garments"): WordNet's names of its root
    synsets and any the curated list gives. `kin` are pairs of members that are one
    thing, or one a kind of the other, to a player (doughnut and donut; refrigerator
    and fridge; salmon and sockeye): never two tiles of one grid.

    A wordplay category ("FIRE ___", "___ BALL") is about the words, not their meaning:
    its `compound` names the shared part and where it sits, its members are the other
    parts of familiar compounds (fly, place, man), and `completions` every common word
    that makes a compound with the part, familiar or not. A completion belongs to the
    category like a secondary member, so no other group of its grid may hold one.
    """

    name: str
    members: tuple[str, ...]
    secondary: tuple[str, ...] = ()
    synsets: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    kin: tuple[tuple[str, str], ...] = ()
    compound: Compound | None = None
    completions: tuple[str, ...] = ()

    @property
    def is_wordplay(self) -> bool:
        return self.compound is not None


@dataclass(frozen=True, slots=True)
class Compound:
    """The part a wordplay category's compounds share: "fire", first, in "FIRE ___"."""

    part: str
    position: str  # "first" (FIRE ___) or "last" (___ BALL)


#: The blank of a wordplay category's display name: "FIRE ___", "___ BALL".
WORDPLAY_BLANK = "___"


def is_wordplay_theme(theme: str) -> bool:
    """Whether a theme names a wordplay category, which the lexicon spells with a blank
    for the missing part ("FIRE ___"); a theme line in that form is read alike."""
    return WORDPLAY_BLANK in theme


def _empty_forms() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


def _singular(word: str, irregular: Mapping[str, tuple[str, ...]]) -> str:
    """The singular of a plural noun by English's rules (cities, boxes, buses, trees), or
    by WordNet's table (geese); any other word as it is."""
    if word in irregular:
        return irregular[word][0]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes", "uses", "oes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _number_phrase(text: str, irregular: Mapping[str, tuple[str, ...]]) -> str:
    """A theme's words in the singular, so that "Dog breed" and "dog breeds" agree but
    "Biology" and "Biologists", or "Boating" and "Boats", do not."""
    words = re.findall(r"[^\W_]+", text.casefold())
    return " ".join(_singular(word, irregular) for word in words)


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Categories by display name, with the reverse index from word to categories."""

    categories: Mapping[str, Category]
    irregular_forms: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_forms)
    _by_key: Mapping[str, Category] = field(init=False, repr=False, compare=False)
    _by_alias: Mapping[str, Category] = field(init=False, repr=False, compare=False)
    _by_word: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _kin: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)
    _kin_of: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _by_number: Mapping[str, Category] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_key: dict[str, Category] = {}
        by_word: dict[str, list[str]] = {}
        for name, category in self.categories.items():
            key = name.casefold()
            if key in by_key:
                raise ValueError(f"category {name!r} is given twice")
            by_key[key] = category
            for word in dict.fromkeys(
                (*category.members, *category.secondary, *category.completions)
            ):
                by_word.setdefault(word, []).append(name)
        by_alias: dict[str, Category] = {}
        for category in self.categories.values():
            for alias in category.aliases:  # a display name wins over an alias
                if alias.casefold() not in by_key:
                    by_alias.setdefault(alias.casefold(), category)
        # The dataclass is frozen; these caches are set once, here, and never change.
        object.__setattr__(self, "categories", MappingProxyType(dict(self.categories)))
        object.__setattr__(
            self, "irregular_forms", MappingProxyType(dict(self.irregular_forms))
        )
        object.__setattr__(self, "_by_key", MappingProxyType(by_key))
        object.__setattr__(self, "_by_alias", MappingProxyType(by_alias))
        # Built on the first `lookup`, for a lexicon that is never asked is never indexed.
        object.__setattr__(self, "_by_number", None)
        object.__setattr__(
            self, "_by_word", MappingProxyType({w: tuple(c) for w, c in by_word.items()})
        )
        kin = {
            (min(a, b), max(a, b)) for category in self.categories.values() for a, b in category.kin
        }
        object.__setattr__(self, "_kin", frozenset(kin))
        kin_of: dict[str, set[str]] = {}
        for a, b in kin:
            kin_of.setdefault(a, set()).add(b)
            kin_of.setdefault(b, set()).add(a)
        object.__setattr__(
            self, "_kin_of", MappingProxyType({w: frozenset(k) for w, k in kin_of.items()})
        )

    @classmethod
    def of(
        cls,
        categories: Iterable[Category],
        irregular_forms: Mapping[str, Iterable[str]] | None = None,
    ) -> Lexicon:
        """A lexicon from categories and an inflected-form -> base-forms table."""
        forms = {form: tuple(bases) for form, bases in (irregular_forms or {}).items()}
        return cls({category.name: category for category in categories}, forms)

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, category: object) -> bool:
        return isinstance(category, str) and category.casefold() in self._by_key

    def category(self, name: str) -> Category:
        """The category of that display name, in any letter case; KeyError if none."""
        try:
            return self._by_key[name.casefold()]
        except KeyError:
            raise KeyError(f"no category {name!r} in the lexicon") from None

    def lookup(self, theme: str) -> Category | None:
        """The category a theme line names, or None when it names none.

        A line names a category by its display name or one of its aliases, in any
        letter case, or by the same words in another number ("Tree", "dog breed"):
        each word is compared in the singular (by English's rules and WordNet's
        table, so "Geese" finds a category named "Goose"), never by stem, since
        "Biology" names no category of biologists. A display name wins over an
        alias, and an exact match over one in another number.
        """
        key = theme.casefold()
        found = self._by_key.get(key) or self._by_alias.get(key)
        if found is not None:
            return found
        if self._by_number is None:
            by_number: dict[str, Category] = {}
            for category in self.categories.values():
                by_number.setdefault(self._number_phrase(category.name), category)
            for category in self.categories.values():
                for alias in category.aliases:
                    by_number.setdefault(self._number_phrase(alias), category)
            object.__setattr__(self, "_by_number", MappingProxyType(by_number))
        assert self._by_number is not None
        return self._by_number.get(self._number_phrase(theme))

    def _number_phrase(self, text: str) -> str:
        return _number_phrase(text, self.irregular_forms)

    def members(self, category: str, *, secondary: bool = False) -> tuple[str, ...]:
        """The category's members, most frequent first (with `secondary`, those after)."""
        found = self.category(category)
        return found.members + found.secondary if secondary else found.members

    def is_member(self, word: str, category: str, *, secondary: bool = True) -> bool:
        """Whether `word` belongs to the category (by any sense, unless secondary=False)."""
        found = self._by_key.get(category.casefold())
        if found is None:
            return False
        word = word.lower()
        return word in found.members or (
            secondary and (word in found.secondary or word in found.completions)
        )

    def are_kin(self, a: str, b: str) -> bool:
        """Whether two words are one thing, or one a kind of the other, in some category
        (donut, doughnut; fridge, refrigerator): a player would not tell them apart."""
        a, b = a.lower(), b.lower()
        return (min(a, b), max(a, b)) in self._kin

    def kin_of(self, word: str) -> frozenset[str]:
        """Every word `are_kin` pairs with this one, in any case (most words have none)."""
        return self._kin_of.get(word.lower(), frozenset())

    def categories_of(self, word: str) -> tuple[str, ...]:
        """Every category the word is a member of, in the lexicon's order ("bass": Fish, ...),
        counting a wordplay category's completions ("place": Rooms, FIRE ___, ...)."""
        return self._by_word.get(word.lower(), ())

    def overlap(self, a: str, b: str) -> frozenset[str]:
        """The words two categories share, counting secondary members too (not a wordplay
        category's completions: "FIRE ___" shares no meaning with Rooms)."""
        return frozenset(self.members(a, secondary=True)) & frozenset(
            self.members(b, secondary=True)
        )

    def base_forms(self, word: str) -> tuple[str, ...]:
        """The base forms of an irregular plural or inflection (geese -> goose); () if none."""
        return self.irregular_forms.get(word.lower(), ())
