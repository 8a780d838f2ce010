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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from asyncpipe.puzzle.words import ThemeVariants, VariantKeys, is_puzzle_word  # noqa: E402

#: Familiar means among the GloVe index's most frequent words (its rows are in
#: frequency order over Wikipedia + Gigaword). 50,000 keeps "kant", "hume", "zinnia"
#: and "mongoose" while leaving out the long tail of Latin genus names and rare breeds.
FAMILIAR_RANK = 100_000
MIN_MEMBERS = 8
#: Two categories whose member sets share more than this (intersection over union)
#: would make the same group twice; the list must pick one.
MAX_JACCARD = 0.5
FORMAT_VERSION = 1
DEFAULT_CATEGORIES = REPO / "scripts" / "lexicon_categories.txt"
EXCEPTION_FILES = {"noun": "noun.exc", "verb": "verb.exc", "adj": "adj.exc"}
_HYPONYMS = {"~", "~i"}
_SYNSET_REF = re.compile(r"([A-Za-z0-9_'.-]+)\.(\d+)")
_TILE = re.compile(r"[a-z]+")


class BuildError(Exception):
    """The inputs cannot make a valid lexicon; the message names what to fix."""


@dataclass(frozen=True)
class Synset:
    """One noun synset: its lemmas as WordNet spells them and its hyponym links."""

    offset: int
    lemmas: tuple[str, ...]
    hyponyms: tuple[int, ...]
    instances: tuple[int, ...]
    gloss: str


@dataclass
class WordNet:
    """The parts of the WordNet noun database the build uses."""

    synsets: dict[int, Synset]
    senses: dict[str, tuple[int, ...]]  # index.noun: lemma -> offsets, in sense order
    other_pos: frozenset[str]  # lemmas that are also adjectives, verbs or adverbs
    common_nouns: frozenset[str]  # noun lemmas written in lower case somewhere

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

    def descendants(
        self, roots: Iterable[int], excluded: frozenset[int], instances_only: bool
    ) -> Iterator[Synset]:
        """Every hyponym and instance hyponym below `roots`, at any depth, once each."""
        seen = set(excluded)
        stack = [offset for offset in roots if offset not in seen]
        seen.update(stack)
        while stack:
            synset = self.synsets[stack.pop()]
            for child in synset.hyponyms + synset.instances:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
                    if not instances_only or child in synset.instances:
                        yield self.synsets[child]


def read_wordnet(folder: Path) -> WordNet:
    """Parse data.noun and index.noun (and the other indexes, for part of speech)."""
    synsets: dict[int, Synset] = {}
    for line in _database_lines(folder / "data.noun"):
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, count = int(fields[0]), int(fields[3], 16)
        lemmas = tuple(fields[4 + 2 * i] for i in range(count))
        at = 4 + 2 * count
        pointer_count = int(fields[at])
        hyponyms: list[int] = []
        instances: list[int] = []
        for i in range(pointer_count):
            symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if pos == "n" and symbol in _HYPONYMS:
                (hyponyms if symbol == "~" else instances).append(int(target))
        synsets[offset] = Synset(offset, lemmas, tuple(hyponyms), tuple(instances), gloss)
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
    return WordNet(synsets, senses, other_pos, common_nouns)


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
    instances_only: bool = False
    line: int = 0


def read_categories(path: Path) -> list[CategorySpec]:
    """Parse the list: `Display name | root.N root.N | -branch.N !word +word instances`."""
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
        instances_only = False
        for option in (parts[2] if len(parts) == 3 else "").split():
            if option == "instances":
                instances_only = True
            elif option.startswith("-"):
                branches.append(option[1:])
            elif option.startswith("!"):
                words.add(option[1:])
            elif option.startswith("+"):
                extra.append(option[1:])
            else:
                raise BuildError(f"{path}:{number}: unknown option {option!r}")
        specs.append(
            CategorySpec(
                name,
                tuple(parts[1].split()),
                tuple(branches),
                frozenset(words),
                tuple(extra),
                instances_only,
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


def is_primary(word: str, names: bool, inside: set[int], wordnet: WordNet) -> bool:
    """Whether the word's usual meaning is the category's, judged by WordNet's sense order.

    WordNet lists a word's senses most frequent first. A common noun counts when one of
    its first two senses is in the category (maple's first sense is the wood, its second
    the tree); a name only by its first ("Ohio" is first the state, then the river).
    Members by a later sense (bass the fish, permit the fish) are kept apart as secondary:
    a player knows some of them, and they make red herrings, but not a plain group.
    """
    senses = wordnet.senses.get(word, ())
    if names:
        # "Perry", "James", "Spencer": a surname many people share, or a common noun too,
        # is no clear tile for one philosopher.
        unique = len(senses) <= 2 and word not in wordnet.common_nouns
        return unique and senses[:1] != () and senses[0] in inside
    return any(offset in inside for offset in senses[:2])


def build_category(
    spec: CategorySpec,
    wordnet: WordNet,
    ranks: dict[str, int],
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
    except BuildError as error:
        raise BuildError(f"{where}: {error}") from None
    candidates: set[str] = set(spec.extra_words)
    names: set[str] = set()
    inside: set[int] = set()
    for synset in wordnet.descendants(roots, excluded, spec.instances_only):
        inside.add(synset.offset)
        for lemma in synset.lemmas:
            word = tile_of(lemma, wordnet)
            if word is not None:
                candidates.add(word)
                if not lemma.islower():
                    names.add(word)
    variant_key = VariantKeys(exceptions, candidates)
    own_name = ThemeVariants(spec.name, variant_key)
    root_words = {
        lemma.lower() for offset in roots for lemma in wordnet.synsets[offset].lemmas
    }
    kept: list[str] = []
    secondary: list[str] = []
    keys: set[str] = set()
    for word in sorted(candidates, key=lambda w: (ranks.get(w, len(ranks)), w)):
        if (
            word in spec.excluded_words
            or word in root_words
            or word in stopwords
            or not is_puzzle_word(word)
            or own_name.covers(word)
        ):
            continue
        if ranks.get(word, FAMILIAR_RANK) >= FAMILIAR_RANK:
            continue
        key = variant_key(word)
        if key in keys:  # "dance" and "dancing" would be one tile twice
            continue
        keys.add(key)
        primary = word in spec.extra_words or is_primary(word, word in names, inside, wordnet)
        (kept if primary else secondary).append(word)
    if len(kept) < MIN_MEMBERS:
        raise BuildError(
            f"{where}: only {len(kept)} familiar members (need {MIN_MEMBERS}): {kept}"
        )
    synsets = [f"{ref}:{wordnet.resolve(ref):08d}" for ref in spec.roots]
    return Category(spec.name, synsets, kept, secondary)


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
            }
            for category in categories
        },
        "irregular_forms": exceptions,
    }


def encode(document: dict[str, object]) -> bytes:
    """Deterministic gzip'd JSON: sorted keys, no timestamp, no file name in the header."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(text.encode("ascii"))
    return buffer.getvalue()


def glove_ranks() -> dict[str, int]:
    """Each word's frequency rank in the GloVe index (0 is the most frequent)."""
    from asyncpipe.io.vector_index import load_glove

    ranks: dict[str, int] = {}
    for rank, word in enumerate(load_glove().words):
        ranks.setdefault(word, rank)
    return ranks


def read_stopwords() -> frozenset[str]:
    path = REPO / "asyncpipe" / "data" / "stopwords.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def build(wordnet_folder: Path, categories_path: Path) -> tuple[bytes, list[Category]]:
    """Everything but writing: the file's bytes and the categories, for the report."""
    wordnet = read_wordnet(wordnet_folder)
    ranks = glove_ranks()
    stopwords = read_stopwords()
    specs = read_categories(categories_path)
    exceptions = read_exceptions(wordnet_folder)
    forms = merged_exceptions(exceptions)
    categories: list[Category] = []
    problems: list[str] = []
    for spec in specs:  # every failing category at once, not one per rebuild
        try:
            categories.append(build_category(spec, wordnet, ranks, stopwords, forms))
        except BuildError as error:
            problems.append(str(error))
    if problems:
        raise BuildError("\n  ".join([f"{len(problems)} categories fail:", *problems]))
    duplicates = check_overlaps(categories)
    if duplicates:
        lines = "\n".join(f"  {a} / {b}: {share:.2f}" for a, b, share in duplicates)
        raise BuildError(f"near-duplicate categories (overlap > {MAX_JACCARD}):\n{lines}")
    document = lexicon_document(categories, exceptions)
    return encode(document), categories


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
