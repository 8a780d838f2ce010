from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from asyncpipe.errors import InputError
from asyncpipe.io.lexicon_file import load_lexicon, parse_lexicon

REPO = Path(__file__).resolve().parents[2]
WORDNET = Path("/usr/share/wordnet")  # Debian/Ubuntu package wordnet-base


def document(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "format": 2,
        "categories": {
            "Trees": {"members": ["oak", "elm"], "secondary": [], "synsets": [], "aliases": ["Tree"]}
        },
        "irregular_forms": {"noun": {"geese": ["goose"]}, "verb": {"ran": ["run"]}},
    }
    base.update(changes)
    return base


def packed(value: object) -> bytes:
    return gzip.compress(json.dumps(value).encode(), mtime=0)


def test_a_well_formed_file_becomes_a_lexicon() -> None:
    lexicon = parse_lexicon(packed(document()), "planted")
    assert lexicon.members("Trees") == ("oak", "elm")
    assert lexicon.category("Trees").aliases == ("Tree",)
    assert lexicon.base_forms("ran") == ("run",)


def test_a_file_in_the_first_format_is_refused_not_misread() -> None:
    # Format 1 had no aliases; reading one would silently lose what lookup needs.
    with pytest.raises(InputError, match="format 2"):
        parse_lexicon(packed(document(format=1)), "old.json.gz")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not gzip at all",
        packed(document())[:-9],  # truncated
        gzip.compress(b"{not json"),
        packed([1, 2, 3]),
        packed(document(format=99)),
        packed(document(categories=[])),
        packed(document(categories={"Trees": {"members": "oak"}})),
        packed(document(irregular_forms={"noun": {"geese": [1]}})),
        packed(document(categories={"Trees": {"members": ["oak"], "aliases": "Tree"}})),
    ],
)
def test_a_damaged_file_is_an_input_error_naming_it(payload: bytes) -> None:
    with pytest.raises(InputError, match="damaged.json.gz"):
        parse_lexicon(payload, "damaged.json.gz")


def test_the_shipped_file_is_read_once_and_cached() -> None:
    assert load_lexicon() is load_lexicon()


def test_rebuilding_gives_the_shipped_file_byte_for_byte(tmp_path: Path) -> None:
    # Needs the WordNet 3.0 database: `apt-get install wordnet-base` (CI installs it).
    assert (WORDNET / "data.noun").is_file(), "install the wordnet-base package"
    out = tmp_path / "lexicon.json.gz"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_lexicon.py"),
         "--wordnet", str(WORDNET), "--out", str(out)],
        check=True, capture_output=True, cwd=REPO,
    )
    assert out.read_bytes() == (REPO / "asyncpipe" / "data" / "lexicon.json.gz").read_bytes()


def test_a_wordplay_category_keeps_its_compound_and_completions() -> None:
    entry = {
        "members": ["place", "man", "ball"],
        "kind": "wordplay",
        "compound": {"part": "fire", "position": "first"},
        "completions": ["ball", "fly", "man", "place", "work"],
    }
    lexicon = parse_lexicon(packed(document(categories={"FIRE ___": entry})), "planted")
    category = lexicon.category("FIRE ___")
    assert category.is_wordplay
    assert category.compound is not None
    assert (category.compound.part, category.compound.position) == ("fire", "first")
    assert category.completions == ("ball", "fly", "man", "place", "work")
    assert not parse_lexicon(packed(document()), "planted").category("Trees").is_wordplay


@pytest.mark.parametrize(
    "entry",
    [
        {"members": ["fly"], "kind": "pun"},
        {"members": ["fly"], "kind": "wordplay"},
        {"members": ["fly"], "kind": "wordplay", "compound": {"part": "fire", "position": "mid"}},
    ],
)
def test_a_wordplay_category_without_a_valid_compound_is_an_input_error(
    entry: dict[str, object],
) -> None:
    with pytest.raises(InputError, match="FIRE ___"):
        parse_lexicon(packed(document(categories={"FIRE ___": entry})), "planted")
