"""Build asyncpipe's shipped lexicon of category members from WordNet 3.0.

Run it (this is what `make lexicon` calls) from the repository root:

    python scripts/build_lexicon.py --wordnet /usr/share/wordnet \
        --out asyncpipe/data/lexicon.json.gz

It needs the WordNet 3.0 database files (Debian/Ubuntu: `apt-get install wordnet-base`,
which puts them in /usr/share/wordnet) and the GloVe index that asyncpipe already
depends on. Nothing is downloaded.

Why a build step and not WordNet at run time: the run must stay offline and light, and
a puzzle needs only a few hundred familiar categories, not WordNet's 82,000 noun synsets.
The build reads the curated list (`scripts/lexicon_categories.txt`), resolves each
category's synsets, collects every hyponym and instance hyponym at any depth, keeps the
members a player would know, and writes one small gzip'd JSON file with deterministic
bytes (sorted keys, gzip mtime 0), so a rebuild from the same inputs changes nothing.

A member is primary only when WordNet's evidence says a player reads it as the
category (sense order, sense-tagged counts across parts of speech, and for people's
names whether the name is anyone else's and whether GloVe puts it near the category's
word); the rest are `secondary`. Each category also gets `aliases`: its roots' lemmas
whose first sense is the root, plus any `=Alias` of the list.

It also copies WordNet's exception lists (geese -> goose, ran -> run), which variant
detection needs for irregular plurals and inflections.

The build fails loudly, naming the category, when a synset reference does not resolve,
when a category ends with fewer than MIN_MEMBERS familiar members, or when two
categories are near-duplicates (their member sets overlap by more than MAX_JACCARD).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from asyncpipe.puzzle.words import (  # noqa: E402
    ThemeVariants,
    VariantKeys,
    is_puzzle_word,
    theme_words,
)

#: Familiar means among the GloVe index's most frequent words (its rows are in
#: frequency order over Wikipedia + Gigaword). 50,000 keeps "kant", "hume", "zinnia"
#: and "mongoose" while leaving out the long tail of Latin genus names and rare breeds.
FAMILIAR_RANK = 100_000
MIN_MEMBERS = 8
#: Two categories whose member sets share more than this (intersection over union)
#: would make the same group twice; the list must pick one.
MAX_JACCARD = 0.5
FORMAT_VERSION = 2
DEFAULT_CATEGORIES = REPO / "scripts" / "lexicon_categories.txt"
EXCEPTION_FILES = {"noun": "noun.exc", "verb": "verb.exc", "adj": "adj.exc"}
_HYPONYMS = {"~", "~i"}
_SYNSET_REF = re.compile(r"([A-Za-z0-9_'.-]+)\.(\d+)")
_TILE = re.compile(r"[a-z]+")


class BuildError(Exception):
    """The inputs cannot make a valid lexicon; the message names what to fix."""


#: WordNet's lexicographer file for people (noun.person): the senses that make a name
#: stand for more than one person.
PERSON_FILE = 18
#: A word whose verb, adjective and adverb senses are tagged this many times more often
#: than its noun senses in WordNet's sense-tagged texts reads as that other word ("die",
#: "kiss", "concentrate").
OTHER_POS_DOMINANCE = 2
#: A noun whose most frequent sense is tagged at least this often, and this many times
#: more than the category's sense, is that other thing first.
RARE_SENSE_COUNT = 5
#: A name that begins this many other people's full names is a first name ("Howard"
#: Hughes, Carter, Hawks...); one such ("Hume" Cronyn) leaves David Hume his surname.
FIRST_NAME_PEOPLE = 2
#: A person's name must read as the category in GloVe too: its vector this near the
#: category's own word ("picasso" to "painter" 0.67, "reynolds" 0.14)...
NAME_SIMILARITY = 0.3
#: ...and nearer still when it is as frequent as a common surname ("tracy", "blake":
#: among the 15,000 most frequent words, where a name is many people's).
FREQUENT_NAME_RANK = 15_000
FREQUENT_NAME_SIMILARITY = 0.5
_SENSE_KEY = re.compile(r"([^%]+)%(\d):")


@dataclass(frozen=True)
class Synset:
    """One noun synset: its lemmas as WordNet spells them and its hyponym links."""

    offset: int
    lexfile: int
    lemmas: tuple[str, ...]
    hyponyms: tuple[int, ...]
    instances: tuple[int, ...]
    gloss: str
    part_of: tuple[int, ...] = ()  # part holonyms: Milan is part of Lombardy


@dataclass
class WordNet:
    """The parts of the WordNet noun database the build uses."""

    synsets: dict[int, Synset]
    senses: dict[str, tuple[int, ...]]  # index.noun: lemma -> offsets, in sense order
    other_pos: frozenset[str]  # lemmas that are also adjectives, verbs or adverbs
    common_nouns: frozenset[str]  # noun lemmas written in lower case somewhere
    #: cntlist.rev: how often each noun sense of a lemma was tagged (by sense number)...
    noun_counts: dict[str, dict[int, int]] = field(default_factory=dict)
    #: ...and how often its verb, adjective and adverb senses were, together.
    other_counts: dict[str, int] = field(default_factory=dict)
    #: Inflected forms in the exception lists ("drew", "hung"): no name for a tile.
    inflections: frozenset[str] = frozenset()
    #: Irregular plurals in noun.exc ("elves", "geese").
    plurals: frozenset[str] = frozenset()
    #: First words of people's full names ("Howard" of Howard Hughes), by person synset.
    first_names: dict[str, frozenset[int]] = field(default_factory=dict)

    def tag_counts(self, word: str) -> tuple[int, ...]:
        """The tag count of each noun sense of `word`, in sense order (0 when untagged)."""
        counts = self.noun_counts.get(word, {})
        return tuple(counts.get(n, 0) for n in range(1, len(self.senses.get(word, ())) + 1))

    def resolve(self, ref: str) -> int:
        """The offset of `lemma.N`, WordNet's N-th noun sense of lemma."""
        match = _SYNSET_REF.fullmatch(ref)
        if match is None:
            raise BuildError(f"{ref!r}: expected lemma.N, for example tree.1")
        lemma, number = match.group(1).lower(), int(match.group(2))
        offsets = self.senses.get(lemma)
        if not offsets:
            raise BuildError(f"{ref!r}: {lemma!r} is not a WordNet noun")
        if not 1 <= number <= len(offsets):
            raise BuildError(f"{ref!r}: {lemma!r} has {len(offsets)} noun senses")
        return offsets[number - 1]

    def is_part_of(self, offset: int, wholes: frozenset[int]) -> bool:
        """Whether a synset lies in one of `wholes` by part holonyms at any depth
        (Milan in Lombardy in Italy)."""
        seen: set[int] = set()
        stack = [offset]
        while stack:
            current = stack.pop()
            if current in wholes:
                return True
            for whole in self.synsets[current].part_of:
                if whole not in seen:
                    seen.add(whole)
                    stack.append(whole)
        return False

    def descendants(
        self, roots: Iterable[int], excluded: frozenset[int], kind: str = "all"
    ) -> Iterator[Synset]:
        """Every hyponym and instance hyponym below `roots`, at any depth, once each.

        `kind` "instances" yields only named instances (Plato), "kinds" only the
        hyponyms that are kinds of thing (surgeon, not William Harvey).
        """
        seen = set(excluded)
        stack = [offset for offset in roots if offset not in seen]
        seen.update(stack)
        while stack:
            synset = self.synsets[stack.pop()]
            children = synset.hyponyms if kind == "kinds" else synset.hyponyms + synset.instances
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
                    if kind != "instances" or child in synset.instances:
                        yield self.synsets[child]


def read_wordnet(folder: Path) -> WordNet:
    """Parse data.noun and index.noun (and the other indexes, for part of speech)."""
    synsets: dict[int, Synset] = {}
    for line in _database_lines(folder / "data.noun"):
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, lexfile, count = int(fields[0]), int(fields[1]), int(fields[3], 16)
        lemmas = tuple(fields[4 + 2 * i] for i in range(count))
        at = 4 + 2 * count
        pointer_count = int(fields[at])
        hyponyms: list[int] = []
        instances: list[int] = []
        part_of: list[int] = []
        for i in range(pointer_count):
            symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if pos == "n" and symbol in _HYPONYMS:
                (hyponyms if symbol == "~" else instances).append(int(target))
            elif pos == "n" and symbol == "#p":
                part_of.append(int(target))
        synsets[offset] = Synset(
            offset, lexfile, lemmas, tuple(hyponyms), tuple(instances), gloss, tuple(part_of)
        )
    senses: dict[str, tuple[int, ...]] = {}
    for line in _database_lines(folder / "index.noun"):
        fields = line.split()
        senses[fields[0]] = tuple(int(offset) for offset in fields[-int(fields[2]) :])
    other_pos = frozenset(
        line.split(" ", 1)[0]
        for name in ("index.adj", "index.verb", "index.adv")
        for line in _database_lines(folder / name)
    )
    common_nouns = frozenset(
        lemma for synset in synsets.values() for lemma in synset.lemmas if lemma.islower()
    )
    noun_counts: dict[str, dict[int, int]] = {}
    other_counts: dict[str, int] = {}
    for line in _database_lines(folder / "cntlist.rev"):
        sense_key, sense_number, tagged = line.split()
        match = _SENSE_KEY.match(sense_key)
        if match is None:
            continue
        lemma, pos = match.group(1), match.group(2)
        if pos == "1":
            noun_counts.setdefault(lemma, {})[int(sense_number)] = int(tagged)
        else:
            other_counts[lemma] = other_counts.get(lemma, 0) + int(tagged)
    inflections = frozenset(
        line.split(" ", 1)[0].lower()
        for name in ("verb.exc", "adj.exc")
        for line in _database_lines(folder / name)
    )
    plurals = frozenset(
        line.split(" ", 1)[0].lower() for line in _database_lines(folder / "noun.exc")
    )
    first_names: dict[str, set[int]] = {}
    for synset in synsets.values():
        if synset.lexfile == PERSON_FILE:
            for lemma in synset.lemmas:
                first, _, rest = lemma.partition("_")
                if rest and not first.islower():
                    first_names.setdefault(first.lower(), set()).add(synset.offset)
    return WordNet(
        synsets,
        senses,
        other_pos,
        common_nouns,
        noun_counts,
        other_counts,
        inflections,
        plurals,
        {first: frozenset(offsets) for first, offsets in first_names.items()},
    )


def _database_lines(path: Path) -> Iterator[str]:
    """The records of a WordNet file, skipping the licence header (lines that start blank)."""
    if not path.is_file():
        raise BuildError(f"{path}: not found (install the wordnet-base package)")
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line and not line.startswith(" "):
                yield line.rstrip("\n")


def read_exceptions(folder: Path) -> dict[str, dict[str, list[str]]]:
    """WordNet's irregular forms per part of speech: {"noun": {"geese": ["goose"]}, ...}.

    Only single-word, alphabetic entries are kept: a tile is one word.
    """
    tables: dict[str, dict[str, list[str]]] = {}
    for pos, name in EXCEPTION_FILES.items():
        table: dict[str, list[str]] = {}
        for line in _database_lines(folder / name):
            form, *bases = line.split()
            bases = [base for base in bases if _TILE.fullmatch(base) and base != form]
            if _TILE.fullmatch(form) and bases:
                table[form] = sorted(set(table.get(form, [])) | set(bases))
        tables[pos] = table
    return tables


def merged_exceptions(tables: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """One table over the parts of speech, merged as asyncpipe.io.lexicon_file does."""
    merged: dict[str, list[str]] = {}
    for pos in sorted(tables):
        for form, bases in tables[pos].items():
            merged[form] = list(dict.fromkeys([*merged.get(form, []), *bases]))
    return merged


@dataclass
class CategorySpec:
    """One line of the curated list: a display name, its synsets, and what to leave out."""

    name: str
    roots: tuple[str, ...]
    excluded_branches: tuple[str, ...] = ()
    excluded_words: frozenset[str] = frozenset()
    extra_words: tuple[str, ...] = ()
    kind: str = "all"  # "instances": named ones only; "kinds": no named ones
    aliases: tuple[str, ...] = ()
    within: tuple[str, ...] = ()  # in:Italy.1 keeps the members that are part of Italy
    line: int = 0


def read_categories(path: Path) -> list[CategorySpec]:
    """Parse the list: `Name | root.N ... | -branch.N !word +word =alias in:whole.N kinds`."""
    specs: list[CategorySpec] = []
    names: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [part.strip() for part in text.split("|")]
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise BuildError(f"{path}:{number}: expected 'Name | synsets [| options]'")
        name = parts[0]
        if name.lower() in names:
            raise BuildError(f"{path}:{number}: category {name!r} is listed twice")
        names.add(name.lower())
        branches: list[str] = []
        words: set[str] = set()
        extra: list[str] = []
        aliases: list[str] = []
        within: list[str] = []
        kind = "all"
        for option in (parts[2] if len(parts) == 3 else "").split():
            if option in ("instances", "kinds"):
                kind = option
            elif option.startswith("-"):
                branches.append(option[1:])
            elif option.startswith("!"):
                words.add(option[1:])
            elif option.startswith("+"):
                extra.append(option[1:])
            elif option.startswith("in:"):
                within.append(option[3:])
            elif option.startswith("=") and len(option) > 1:
                aliases.append(option[1:].replace("_", " "))
            else:
                raise BuildError(f"{path}:{number}: unknown option {option!r}")
        specs.append(
            CategorySpec(
                name,
                tuple(parts[1].split()),
                tuple(branches),
                frozenset(words),
                tuple(extra),
                kind,
                tuple(aliases),
                tuple(within),
                number,
            )
        )
    return specs


@dataclass
class Category:
    """A built category, ready to be written."""

    name: str
    synsets: list[str]
    members: list[str]
    secondary: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    #: Pairs of members that are one thing, or one a kind of the other, to a player:
    #: the same synset (doughnut, donut) or one below the other in the category's
    #: tree (refrigerator, fridge; salmon, sockeye). Never two tiles of one grid.
    kin: list[list[str]] = field(default_factory=list)
    #: For a wordplay category ("FIRE ___"): the shared part and where it sits...
    compound: dict[str, str] | None = None
    #: ...and every common word that completes it in WordNet, familiar or not.
    completions: list[str] = field(default_factory=list)


def kin_pairs(
    words: Iterable[str], tiles_of: dict[int, set[str]], inside: set[int], wordnet: WordNet
) -> list[list[str]]:
    """Every pair of `words` sharing a synset, or whose synsets are ancestor and descendant
    inside the category (`inside`); `tiles_of` maps a synset to the tiles it gives."""
    wanted = set(words)
    synsets_of: dict[str, set[int]] = {}
    for offset, tiles in tiles_of.items():
        for word in tiles & wanted:
            synsets_of.setdefault(word, set()).add(offset)
    parents: dict[int, list[int]] = {}
    for offset in inside:
        synset = wordnet.synsets[offset]
        for child in (*synset.hyponyms, *synset.instances):
            if child in inside:
                parents.setdefault(child, []).append(offset)
    pairs: set[tuple[str, str]] = set()
    for word, synsets in synsets_of.items():
        above: set[int] = set()
        stack = list(synsets)
        while stack:
            offset = stack.pop()
            if offset not in above:
                above.add(offset)
                stack.extend(parents.get(offset, ()))
        for offset in above:
            for other in tiles_of.get(offset, set()) & wanted:
                if other != word:
                    pairs.add((min(word, other), max(word, other)))
    return [list(pair) for pair in sorted(pairs)]


def tile_of(lemma: str, wordnet: WordNet) -> str | None:
    """The tile a WordNet lemma gives, or None when it makes no single-word tile.

    A name (a capitalised lemma, such as "Plato" or "Nile") is kept only when the word
    is not also an adjective, verb or adverb: "Red" the river or "Cage" the composer
    would read as the common word on a grid.
    """
    word = lemma.lower()
    if not _TILE.fullmatch(word):
        return None
    if not lemma.islower() and word in wordnet.other_pos:
        return None
    return word


def is_primary(
    word: str,
    names: bool,
    inside: set[int],
    wordnet: WordNet,
    reads_as_theme: Callable[[str], bool] = lambda word: True,
) -> bool:
    """Whether the word's usual meaning is the category's, judged by WordNet's evidence.

    WordNet lists a word's senses most frequent first, and cntlist.rev says how often
    each sense was tagged in its sense-tagged texts. A kind of thing (a common noun)
    counts when one of its first two senses is in the category (maple's first sense is
    the wood, its second the tree), unless the word is mostly a verb or adjective ("die",
    "kiss") or its tagged counts put another sense far ahead. Members by a later sense
    (bass the fish, permit the fish) are kept apart as secondary: a player knows some of
    them, and they make red herrings, but not a plain group.
    """
    senses = wordnet.senses.get(word, ())
    if not senses:
        return False
    if names:
        return is_clear_name(word, senses, inside, wordnet) and (
            wordnet.synsets[senses[0]].lexfile != PERSON_FILE or reads_as_theme(word)
        )
    if not any(offset in inside for offset in senses[:2]):
        return False
    first = wordnet.synsets[senses[0]].lexfile
    if senses[0] not in inside and first == PERSON_FILE:
        return False  # "weaver", "drake": a person first, the bird after
    counts = wordnet.tag_counts(word)
    noun_total = sum(counts)
    if wordnet.other_counts.get(word, 0) > OTHER_POS_DOMINANCE * max(noun_total, 1):
        return False
    in_category = sum(
        count for offset, count in zip(senses, counts, strict=True) if offset in inside
    )
    top = max(counts, default=0)
    return not (top >= RARE_SENSE_COUNT and in_category * RARE_SENSE_COUNT < top)


def is_clear_name(word: str, senses: tuple[int, ...], inside: set[int], wordnet: WordNet) -> bool:
    """Whether a name reads at once as the category's one person or place.

    Its first sense must be in the category (WordNet puts Paris the capital before
    Paris the Trojan), and it must be no common word too: not a common noun ("frost"),
    an inflected form ("drew") or a common noun's plural ("sellers"). A person's name
    must also not be a first name of other people ("howard", "bruce") nor name another
    person outside the category (Wayne the actor and Wayne the general).
    """
    if senses[0] not in inside or len(senses) > 3:
        return False
    if word in wordnet.common_nouns or word in wordnet.inflections:
        return False
    for plural in ("s", "es"):  # "sellers", "fields", "banks": a common word's plural
        if word.endswith(plural) and word[: -len(plural)] in wordnet.common_nouns:
            return False
    if wordnet.synsets[senses[0]].lexfile != PERSON_FILE:
        return True
    if len(wordnet.first_names.get(word, frozenset()) - set(senses)) >= FIRST_NAME_PEOPLE:
        return False
    return all(
        offset in inside for offset in senses[1:] if wordnet.synsets[offset].lexfile == PERSON_FILE
    )


def is_inflected_form(word: str, exceptions: dict[str, list[str]], wordnet: WordNet) -> bool:
    """Whether the word is another word's irregular form and no tile of its own.

    At run time every member is a base form in its own right, so a member "ate" (the
    goddess) would stop "ate" and "eat" from sharing a variant key. A plural (noun.exc:
    "elves") is never a tile; a verb or adjective form ("sung", "drew") only when it is
    no common noun ("dove", "saw" and "felt" are).
    """
    if word not in exceptions:
        return False
    return word in wordnet.plurals or word not in wordnet.common_nouns


def build_category(
    spec: CategorySpec,
    wordnet: WordNet,
    glove: Glove,
    stopwords: frozenset[str],
    exceptions: dict[str, list[str]],
) -> Category:
    """Resolve a spec's synsets and keep the familiar, puzzle-worthy members by rank.

    Variant keys use `exceptions` from the WordNet being read, not the shipped file
    this build replaces, so a rebuild never depends on the file it writes; the
    category's own candidates are base forms in their own right, as members are at run
    time ("tangier" is a city here, not a form of tangy).
    """
    where = f"{spec.name!r} (line {spec.line})"
    try:
        roots = [wordnet.resolve(ref) for ref in spec.roots]
        excluded = frozenset(wordnet.resolve(ref) for ref in spec.excluded_branches)
        wholes = frozenset(wordnet.resolve(ref) for ref in spec.within)
    except BuildError as error:
        raise BuildError(f"{where}: {error}") from None
    candidates: set[str] = set(spec.extra_words)
    names: set[str] = set()
    inside: set[int] = set()
    tiles_of: dict[int, set[str]] = {}
    for synset in wordnet.descendants(roots, excluded, spec.kind):
        if wholes and not wordnet.is_part_of(synset.offset, wholes):
            continue
        inside.add(synset.offset)
        for lemma in synset.lemmas:
            word = tile_of(lemma, wordnet)
            if word is not None:
                candidates.add(word)
                tiles_of.setdefault(synset.offset, set()).add(word)
                if not lemma.islower():
                    names.add(word)
    variant_key = VariantKeys(exceptions, candidates)
    own_name = ThemeVariants(spec.name, variant_key)
    root_words = {lemma.lower() for offset in roots for lemma in wordnet.synsets[offset].lemmas}
    ranks = glove.ranks
    # The category's own word in GloVe ("painter", "philosopher"), for names to match.
    # Each root's first lemma only: actor.1's later lemmas ("player") are another word.
    theme = glove.theme_vector(
        part
        for offset in roots
        for part in wordnet.synsets[offset].lemmas[0].lower().split("_")
        if part not in stopwords
    )

    def reads_as_theme(word: str) -> bool:
        similarity = glove.similarity(word, theme)
        if ranks.get(word, FAMILIAR_RANK) < FREQUENT_NAME_RANK:
            return similarity >= FREQUENT_NAME_SIMILARITY
        return similarity >= NAME_SIMILARITY

    kept: list[str] = []
    secondary: list[str] = []
    keys: set[str] = set()
    for word in sorted(candidates, key=lambda w: (ranks.get(w, len(ranks)), w)):
        if (
            word in spec.excluded_words
            or word in root_words
            or is_inflected_form(word, exceptions, wordnet)
            or word in stopwords
            or not is_puzzle_word(word)
            or own_name.covers(word)
        ):
            continue
        # A word the list adds by hand is vouched for ("tortellini" ranks 107,561), but
        # the offline provider must know it: a word outside GloVe's vocabulary could not
        # be embedded, and its whole theme would fail.
        if word not in ranks:
            continue
        if ranks[word] >= FAMILIAR_RANK and word not in spec.extra_words:
            continue
        key = variant_key(word)
        if key in keys:  # "dance" and "dancing" would be one tile twice
            continue
        keys.add(key)
        primary = word in spec.extra_words or is_primary(
            word, word in names, inside, wordnet, reads_as_theme
        )
        (kept if primary else secondary).append(word)
    if len(kept) < MIN_MEMBERS:
        raise BuildError(f"{where}: only {len(kept)} familiar members (need {MIN_MEMBERS}): {kept}")
    synsets = [f"{ref}:{wordnet.resolve(ref):08d}" for ref in spec.roots]
    # The roots' own lemmas name the category too ("Clothing" for Garments), so a
    # theme line in WordNet's words finds it; the name itself needs no alias.
    aliases: list[str] = []
    own_name_key = _phrase_key(spec.name, variant_key)
    seen: set[str] = set()
    # Only a lemma whose first sense is the root: "Romance" is first a love affair,
    # so it names no category of languages.
    lemmas = [
        lemma
        for offset in roots
        for lemma in wordnet.synsets[offset].lemmas
        if wordnet.senses.get(lemma.lower(), (0,))[0] == offset
    ]
    for alias in [*spec.aliases, *(lemma.replace("_", " ") for lemma in lemmas)]:
        alias = alias[:1].upper() + alias[1:]
        phrase = _phrase_key(alias, variant_key)
        if phrase and phrase != own_name_key and alias.casefold() not in seen:
            seen.add(alias.casefold())
            aliases.append(alias)
    kin = kin_pairs([*kept, *secondary], tiles_of, inside, wordnet)
    return Category(spec.name, synsets, kept, secondary, aliases, kin)


def _phrase_key(text: str, variant_key: VariantKeys) -> str:
    """A name's words by variant key: "Tree" and "Trees" are one name."""
    return " ".join(variant_key(word) for word in theme_words(text))


def drop_shared_aliases(categories: list[Category], variant_key: VariantKeys) -> None:
    """Keep only aliases that name one category and are no other category's name.

    "Wear" might be an alias of two clothing categories; a theme line saying it names
    neither plainly, so neither keeps it. An alias that is another category's name in
    another number ("Tree" for Conifers) would take that category's theme lines.
    """
    names = {_phrase_key(category.name, variant_key) for category in categories}
    owners: dict[str, int] = {}
    for category in categories:
        for alias in category.aliases:
            owners[alias.casefold()] = owners.get(alias.casefold(), 0) + 1
    for category in categories:
        own = _phrase_key(category.name, variant_key)
        category.aliases = [
            alias
            for alias in category.aliases
            if owners[alias.casefold()] == 1
            and (_phrase_key(alias, variant_key) not in names - {own})
        ]


def check_overlaps(categories: list[Category]) -> list[tuple[str, str, float]]:
    """The near-duplicate pairs: member sets sharing more than MAX_JACCARD."""
    sets = [(category.name, set(category.members)) for category in categories]
    duplicates = []
    for i, (name_a, a) in enumerate(sets):
        for name_b, b in sets[i + 1 :]:
            shared = len(a & b)
            if shared and shared / len(a | b) > MAX_JACCARD:
                duplicates.append((name_a, name_b, shared / len(a | b)))
    return duplicates


def lexicon_document(
    categories: list[Category], exceptions: dict[str, dict[str, list[str]]]
) -> dict[str, object]:
    """The JSON document the package reads back (asyncpipe.io.lexicon_file)."""
    return {
        "format": FORMAT_VERSION,
        "source": "WordNet 3.0 (Princeton University), see WORDNET_LICENSE",
        "familiar_rank": FAMILIAR_RANK,
        "categories": {
            category.name: {
                "synsets": category.synsets,
                "members": category.members,
                "secondary": category.secondary,
                "aliases": category.aliases,
                "kin": category.kin,
            }
            | _wordplay_fields(category)
            for category in categories
        },
        "irregular_forms": exceptions,
    }


def _wordplay_fields(category: Category) -> dict[str, object]:
    if category.compound is None:
        return {}
    return {"kind": "wordplay", "compound": category.compound, "completions": category.completions}


def encode(document: dict[str, object]) -> bytes:
    """Deterministic gzip'd JSON: sorted keys, no timestamp, no file name in the header."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(text.encode("ascii"))
    return buffer.getvalue()


@dataclass(frozen=True)
class Glove:
    """The GloVe index as the build uses it: frequency ranks, and unit vectors of the
    familiar words (rows are in frequency order, so those are the first rows)."""

    ranks: dict[str, int]
    vectors: np.ndarray  # float64, FAMILIAR_RANK rows, each of length 1

    def similarity(self, word: str, theme: np.ndarray | None) -> float:
        """Cosine of a familiar word to a theme vector, to 3 places (0 when unknown).

        Rounded so that a last-bit difference between machines never flips a choice.
        """
        rank = self.ranks.get(word, FAMILIAR_RANK)
        if theme is None or rank >= FAMILIAR_RANK:
            return 0.0
        return round(float(self.vectors[rank] @ theme), 3)

    def theme_vector(self, words: Iterable[str]) -> np.ndarray | None:
        """The unit mean of the words' vectors, or None when none is familiar."""
        rows = [self.ranks[w] for w in words if self.ranks.get(w, FAMILIAR_RANK) < FAMILIAR_RANK]
        if not rows:
            return None
        mean = self.vectors[rows].mean(axis=0)
        return np.asarray(mean / np.linalg.norm(mean), dtype=np.float64)


def load_familiar_glove() -> Glove:
    """Each word's frequency rank in the GloVe index (0 is the most frequent), and the
    unit vectors of the FAMILIAR_RANK most frequent words."""
    from asyncpipe.io.vector_index import load_glove

    index = load_glove()
    ranks: dict[str, int] = {}
    for rank, word in enumerate(index.words):
        ranks.setdefault(word, rank)
    vectors = np.asarray(index.vectors[:FAMILIAR_RANK], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Glove(ranks, vectors)


def read_stopwords() -> frozenset[str]:
    path = REPO / "asyncpipe" / "data" / "stopwords.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def build(wordnet_folder: Path, categories_path: Path) -> tuple[bytes, list[Category]]:
    """Everything but writing: the file's bytes and the categories, for the report."""
    wordnet = read_wordnet(wordnet_folder)
    glove = load_familiar_glove()
    stopwords = read_stopwords()
    specs = read_categories(categories_path)
    exceptions = read_exceptions(wordnet_folder)
    forms = merged_exceptions(exceptions)
    categories: list[Category] = []
    problems: list[str] = []
    for spec in specs:  # every failing category at once, not one per rebuild
        try:
            categories.append(build_category(spec, wordnet, glove, stopwords, forms))
        except BuildError as error:
            problems.append(str(error))
    if problems:
        raise BuildError("\n  ".join([f"{len(problems)} categories fail:", *problems]))
    drop_shared_aliases(categories, VariantKeys(forms))
    categories.extend(
        drop_near_duplicates(compound_categories(wordnet, glove, stopwords, forms), categories)
    )
    duplicates = check_overlaps(categories)
    if duplicates:
        lines = "\n".join(f"  {a} / {b}: {share:.2f}" for a, b, share in duplicates)
        raise BuildError(f"near-duplicate categories (overlap > {MAX_JACCARD}):\n{lines}")
    document = lexicon_document(categories, exceptions)
    return encode(document), categories


#: A compound is familiar among GloVe's 100,000 most frequent words (as members are);
#: each of its parts, and so each tile, among the 20,000 most frequent: "fly", not "pas".
COMPOUND_RANK = FAMILIAR_RANK
PART_RANK = 20_000
#: A wordplay group needs this many tiles to draw four that fit beside other groups.
MIN_COMPOUND_TILES = 8
#: Nouns that are also affixes make derivations, not compounds a player hears as two
#: words: "sub"+"species", "counter"+"attack", "fore"+"hand", "child"+"hood",
#: "friend"+"ship", "pass"+"age", "act"+"ion", "hand"+"ling".
AFFIXES = frozenset({"sub", "counter", "fore", "hood", "ship", "age", "ion", "ling"})
BLANK = "___"  # asyncpipe.puzzle.lexicon.WORDPLAY_BLANK


def compound_categories(
    wordnet: WordNet, glove: Glove, stopwords: frozenset[str], exceptions: dict[str, list[str]]
) -> list[Category]:
    """Wordplay categories from WordNet's closed compounds: "FIRE ___" and "___ BALL".

    A compound is a single-word common noun (fireplace, football) that splits into two
    parts, each a common noun of its own (at least 3 letters, no stopword, no affix,
    among PART_RANK most frequent), and whose WordNet glosses name one of its parts:
    "fireplace: an open recess ... where a fire can be built", "snowball: ball of snow".
    The gloss test keeps out splits that are no compound to a player ("season" is no
    sea and son, "carpet" no car and pet). Compounds sharing a first part make
    "PART ___", those sharing a last part "___ PART"; the tiles are the other parts,
    most familiar compound first, one per variant family and no plural ("sunglasses"
    gives no tile "glasses"). `completions` keep every word that completes the
    compound in WordNet without the gloss test or the rank cuts (`_completions`), so
    that no such word sits on the group's grid as another group's tile.
    """
    ranks = glove.ranks
    variant_key = VariantKeys(exceptions)

    def is_part(word: str) -> bool:
        return (
            ranks.get(word, PART_RANK) < PART_RANK
            and word in wordnet.common_nouns
            and word not in stopwords
            and word not in AFFIXES
            and is_puzzle_word(word)
            and not is_inflected_form(word, exceptions, wordnet)
            and not (word.endswith("s") and word[:-1] in wordnet.common_nouns)
        )

    tiles: dict[tuple[str, str], list[tuple[int, str]]] = {}
    words = [w for w in sorted(wordnet.senses.keys() | wordnet.other_pos) if _TILE.fullmatch(w)]
    for compound in sorted(wordnet.senses):
        if not _TILE.fullmatch(compound) or compound not in wordnet.common_nouns:
            continue
        glossed: set[str] | None = None
        for cut in range(3, len(compound) - 2):
            first, last = compound[:cut], compound[cut:]
            if not (is_part(first) and is_part(last)):
                continue
            if ranks.get(compound, COMPOUND_RANK) >= COMPOUND_RANK:
                continue
            if glossed is None:
                glossed = _gloss_words(compound, wordnet)
            if not ({first, last, f"{first}s", f"{last}s"} & glossed):
                continue
            rank = ranks[compound]
            tiles.setdefault((first, "first"), []).append((rank, last))
            tiles.setdefault((last, "last"), []).append((rank, first))
    categories: list[Category] = []
    for (part, position), found in sorted(tiles.items()):
        own_name = ThemeVariants(part, variant_key)
        keys: set[str] = set()
        members: list[str] = []
        for _, tile in sorted(found):
            key = variant_key(tile)
            if key not in keys and not own_name.covers(tile):
                keys.add(key)
                members.append(tile)
        if len(members) < MIN_COMPOUND_TILES:
            continue
        completions = _completions(part, position, words)
        name = f"{part.upper()} {BLANK}" if position == "first" else f"{BLANK} {part.upper()}"
        categories.append(
            Category(
                name,
                [],
                members,
                compound={"part": part, "position": position},
                completions=completions,
            )
        )
    return categories


def _completions(part: str, position: str, words: list[str]) -> list[str]:
    """Every word that makes a single-word noun, adjective, verb or adverb of WordNet
    with `part`, however rare the compound or the word: "fly" for fire (firefly),
    "proof" (fireproof), "brick" (firebrick). A grid beside the group holds none."""
    found: set[str] = set()
    for compound in words:  # WordNet's single-word lemmas of every part of speech
        if len(compound) < len(part) + 3:
            continue
        if position == "first" and compound.startswith(part):
            found.add(compound[len(part) :])
        elif position == "last" and compound.endswith(part):
            found.add(compound[: -len(part)])
    return sorted(word for word in found if is_puzzle_word(word))


def _gloss_words(word: str, wordnet: WordNet) -> set[str]:
    """The words of every noun gloss of `word`, with its examples."""
    text = " ".join(wordnet.synsets[offset].gloss for offset in wordnet.senses[word])
    return set(re.findall(r"[a-z]+", text.lower()))


def drop_near_duplicates(found: list[Category], kept: list[Category]) -> list[Category]:
    """`found` without the categories that overlap a kept one (or an earlier one of
    `found` with more members) beyond MAX_JACCARD: "___ HOUSE" and "___ ROOM" could
    share most of their tiles."""
    chosen: list[Category] = []
    sets = [set(category.members) for category in kept]
    for category in sorted(found, key=lambda c: (-len(c.members), c.name)):
        tiles = set(category.members)
        if all(len(tiles & other) <= MAX_JACCARD * len(tiles | other) for other in sets):
            chosen.append(category)
            sets.append(tiles)
    return sorted(chosen, key=lambda category: category.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--categories", type=Path, default=DEFAULT_CATEGORIES)
    default_out = REPO / "asyncpipe" / "data" / "lexicon.json.gz"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        payload, categories = build(args.wordnet, args.categories)
    except BuildError as error:
        print(f"build_lexicon: {error}", file=sys.stderr)
        return 1
    args.out.write_bytes(payload)
    counts = sorted(len(category.members) for category in categories)
    print(
        f"{args.out}: {len(categories)} categories, members min {counts[0]} "
        f"median {counts[len(counts) // 2]} max {counts[-1]}, {len(payload):,} bytes, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
