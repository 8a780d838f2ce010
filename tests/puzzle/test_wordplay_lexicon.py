"""The wordplay categories of the shipped lexicon ("FIRE ___", "___ BALL")."""

from __future__ import annotations

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.lexicon import Category, Compound, Lexicon, is_wordplay_theme
from asyncpipe.puzzle.words import is_puzzle_word, theme_variants


def _wordplay() -> list[Category]:
    return [c for c in load_lexicon().categories.values() if c.is_wordplay]


def test_the_lexicon_ships_wordplay_categories_of_both_positions() -> None:
    found = _wordplay()
    assert len(found) >= 20
    positions = {c.compound.position for c in found if c.compound is not None}
    assert positions == {"first", "last"}
    assert "___ BALL" in load_lexicon() and "FIRE ___" in load_lexicon()
    assert {"foot", "base", "snow", "eye"} <= set(load_lexicon().members("___ BALL"))


def test_a_wordplay_name_shows_the_part_and_a_blank_where_the_tile_goes() -> None:
    for category in _wordplay():
        assert category.compound is not None
        part = category.compound.part.upper()
        expected = f"{part} ___" if category.compound.position == "first" else f"___ {part}"
        assert category.name == expected
        assert is_wordplay_theme(category.name)
    ordinary = [c for c in load_lexicon().categories.values() if not c.is_wordplay]
    assert not any(is_wordplay_theme(c.name) for c in ordinary)


def test_every_tile_is_a_common_word_of_its_own_and_no_form_of_the_part() -> None:
    for category in _wordplay():
        assert category.compound is not None
        assert len(category.members) >= 8, category.name
        assert not category.kin and not category.secondary
        variants = theme_variants(category.name)
        for tile in category.members:
            assert is_puzzle_word(tile), (category.name, tile)
            assert not variants.covers(tile), (category.name, tile)
            assert tile in category.completions, (category.name, tile)


def test_every_common_word_completing_the_compound_belongs_to_the_category() -> None:
    lexicon = load_lexicon()
    # "firefly" is a familiar compound whose gloss names neither part: no listed tile,
    # but still a word that would complete the group on its grid.
    assert "fly" not in lexicon.members("FIRE ___")
    assert "FIRE ___" in lexicon.categories_of("fly")
    assert lexicon.is_member("place", "FIRE ___")
    assert "FIRE ___" in lexicon.categories_of("place")


def test_completions_count_as_membership_but_not_as_overlap() -> None:
    lexicon = Lexicon.of(
        [
            Category("Rooms", ("kitchen", "place", "hall")),
            Category(
                "FIRE ___",
                ("man", "wood"),
                compound=Compound("fire", "first"),
                completions=("hall", "man", "place", "wood"),
            ),
        ]
    )
    assert lexicon.categories_of("place") == ("Rooms", "FIRE ___")
    assert lexicon.is_member("place", "FIRE ___")
    assert not lexicon.is_member("place", "FIRE ___", secondary=False)
    assert lexicon.overlap("Rooms", "FIRE ___") == frozenset()
