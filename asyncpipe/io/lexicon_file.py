"""Read the shipped lexicon (asyncpipe/data/lexicon.json.gz) into a `Lexicon`.

The file is built by scripts/build_lexicon.py from WordNet 3.0 and ships inside the
package, so a run needs no download. It is read once per process and cached: the
lexicon is a frozen value, safe to share. A damaged or foreign file is an
`InputError` naming the file, never a traceback from deep inside json or gzip.
"""

from __future__ import annotations

import gzip
import json
import zlib
from functools import lru_cache
from importlib import resources
from typing import Any

from asyncpipe.errors import InputError
from asyncpipe.puzzle.lexicon import Category, Compound, Lexicon

LEXICON_FILE = "lexicon.json.gz"
FORMAT_VERSION = 2


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """The lexicon that ships with asyncpipe (read once, then cached)."""
    resource = resources.files("asyncpipe.data").joinpath(LEXICON_FILE)
    try:
        payload = resource.read_bytes()
    except OSError as error:
        raise InputError(f"{LEXICON_FILE}: cannot read the shipped lexicon ({error})") from None
    return parse_lexicon(payload, LEXICON_FILE)


def parse_lexicon(payload: bytes, source: str) -> Lexicon:
    """Decode the gzip'd JSON document the build writes; `source` names it in errors."""
    try:
        document = json.loads(gzip.decompress(payload))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{source}: not a gzip'd JSON lexicon ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise InputError(f"{source}: not a lexicon in format {FORMAT_VERSION}")
    categories = document.get("categories")
    forms = document.get("irregular_forms")
    if not isinstance(categories, dict) or not isinstance(forms, dict):
        raise InputError(f"{source}: 'categories' and 'irregular_forms' must be objects")
    return Lexicon.of(
        (_category(name, entry, source) for name, entry in categories.items()),
        _irregular_forms(forms, source),
    )


def _category(name: str, entry: Any, source: str) -> Category:
    if not isinstance(entry, dict):
        raise InputError(f"{source}: category {name!r} is not an object")
    return Category(
        name=name,
        members=_words(entry.get("members"), f"{name!r} members", source),
        secondary=_words(entry.get("secondary", []), f"{name!r} secondary", source),
        synsets=_words(entry.get("synsets", []), f"{name!r} synsets", source),
        aliases=_words(entry.get("aliases", []), f"{name!r} aliases", source),
        kin=_pairs(entry.get("kin", []), f"{name!r} kin", source),
        compound=_compound(entry, name, source),
        completions=_words(entry.get("completions", []), f"{name!r} completions", source),
    )


def _compound(entry: dict[str, Any], name: str, source: str) -> Compound | None:
    """A wordplay category's shared part (`"kind": "wordplay"`), or None for a category
    of meaning (no kind, or `"kind": "category"`)."""
    kind = entry.get("kind", "category")
    if kind == "category":
        return None
    compound = entry.get("compound")
    if (
        kind != "wordplay"
        or not isinstance(compound, dict)
        or not isinstance(compound.get("part"), str)
        or compound.get("position") not in ("first", "last")
    ):
        raise InputError(
            f"{source}: category {name!r} must be of kind 'category' or 'wordplay' with a "
            "compound {'part': ..., 'position': 'first' or 'last'}"
        )
    return Compound(compound["part"], compound["position"])


def _pairs(value: Any, what: str, source: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) for w in pair)
        for pair in value
    ):
        raise InputError(f"{source}: {what} must be a list of pairs of strings")
    return tuple((pair[0], pair[1]) for pair in value)


def _irregular_forms(tables: dict[str, Any], source: str) -> dict[str, tuple[str, ...]]:
    """One table over the parts of speech: "axes" may be ax or axis, "saw" see or saw."""
    merged: dict[str, tuple[str, ...]] = {}
    for pos in sorted(tables):
        table = tables[pos]
        if not isinstance(table, dict):
            raise InputError(f"{source}: irregular forms for {pos!r} are not an object")
        for form, bases in table.items():
            found = _words(bases, f"irregular form {form!r}", source)
            merged[form] = tuple(dict.fromkeys(merged.get(form, ()) + found))
    return merged


def _words(value: Any, what: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise InputError(f"{source}: {what} must be a list of strings")
    return tuple(value)
