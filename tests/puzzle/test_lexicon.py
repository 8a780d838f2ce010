from __future__ import annotations

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.words import is_puzzle_word, theme_variants, variant_key


def planted() -> Lexicon:
    return Lexicon.of(
        [
            Category("Fish", ("salmon", "trout", "cod"), secondary=("bass",)),
            Category("Instruments", ("guitar", "bass", "drum")),
            Category("Trees", ("oak", "ash", "elm"), aliases=("Arbor",)),
            Category("Garments", ("shirt", "coat"), aliases=("Clothing", "Trees")),
        ],
        {"geese": ["goose"], "axes": ["ax", "axis"]},
    )


def test_members_are_in_order_and_secondary_only_on_request() -> None:
    lexicon = planted()
    assert lexicon.members("Fish") == ("salmon", "trout", "cod")
    assert lexicon.members("fish", secondary=True) == ("salmon", "trout", "cod", "bass")


def test_is_member_counts_secondary_senses_unless_told_not_to() -> None:
    lexicon = planted()
    assert lexicon.is_member("Oak", "Trees")
    assert lexicon.is_member("bass", "Fish")
    assert not lexicon.is_member("bass", "Fish", secondary=False)
    assert not lexicon.is_member("oak", "Fish")
    assert not lexicon.is_member("oak", "No such category")


def test_categories_of_lists_every_category_holding_the_word() -> None:
    lexicon = planted()
    assert lexicon.categories_of("bass") == ("Fish", "Instruments")
    assert lexicon.categories_of("oak") == ("Trees",)
    assert lexicon.categories_of("sofa") == ()


def test_overlap_is_the_shared_members() -> None:
    lexicon = planted()
    assert lexicon.overlap("Fish", "Instruments") == {"bass"}
    assert lexicon.overlap("Fish", "Trees") == frozenset()


def test_unknown_category_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="Sofas"):
        planted().members("Sofas")


def test_a_category_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Lexicon.of([Category("Trees", ("oak",)), Category("trees", ("elm",))])


def test_base_forms_of_irregular_forms() -> None:
    lexicon = planted()
    assert lexicon.base_forms("Geese") == ("goose",)
    assert lexicon.base_forms("axes") == ("ax", "axis")
    assert lexicon.base_forms("oaks") == ()


def test_the_lexicon_is_frozen() -> None:
    lexicon = planted()
    with pytest.raises(AttributeError):
        lexicon.categories = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        lexicon.categories["Sofas"] = Category("Sofas", ())  # type: ignore[index]


@pytest.mark.parametrize(
    ("word", "category"),
    [
        ("oak", "Trees"),
        ("maple", "Trees"),
        ("plato", "Philosophers"),
        ("kant", "Philosophers"),
        ("nile", "Rivers"),
        ("amazon", "Rivers"),
        ("salmon", "Fish"),
        ("poker", "Card games"),
        ("ruby", "Gemstones"),
        ("mozart", "Composers"),
        ("cheddar", "Cheeses"),
        ("spaghetti", "Pasta"),
        ("tango", "Dances"),
        ("violin", "String instruments"),
    ],
)
def test_shipped_lexicon_holds_sample_members(word: str, category: str) -> None:
    assert load_lexicon().is_member(word, category)


@pytest.mark.parametrize(
    ("form", "base"),
    [
        ("geese", "goose"),
        ("mice", "mouse"),
        ("wolves", "wolf"),
        ("leaves", "leaf"),
        ("children", "child"),
        ("analyses", "analysis"),
        ("cacti", "cactus"),
        ("ran", "run"),
        ("teeth", "tooth"),
        ("better", "good"),
    ],
)
def test_shipped_lexicon_knows_irregular_forms(form: str, base: str) -> None:
    assert base in load_lexicon().base_forms(form)


def test_every_shipped_category_keeps_ten_members_through_the_run_time_filters() -> None:
    # What a theme's candidates will be: puzzle words, one per variant family, none a
    # form of the theme's own words. Ten leave a group of four with room to choose.
    lexicon = load_lexicon()
    assert len(lexicon) >= 400
    for name, category in lexicon.categories.items():
        assert name.strip() and name == category.name
        own_words = theme_variants(name)
        keys = {
            variant_key(word)
            for word in category.members
            if is_puzzle_word(word, 3) and not own_words.covers(word)
        }
        assert len(keys) >= 8, (name, category.members)
        assert len(set(category.members)) == len(category.members), name


@pytest.mark.parametrize(
    ("category", "words"),
    [
        ("Philosophers", ("plato", "kant", "hume", "aristotle")),
        ("Rivers", ("nile", "amazon", "thames")),
        ("Trees", ("oak", "maple", "birch")),
        ("Dog breeds", ("poodle", "beagle", "terrier")),
        ("Composers", ("mozart", "beethoven")),
        ("Painters", ("picasso", "rembrandt")),
        ("Countries of Africa", ("kenya", "nigeria")),
        ("Gods of Greek myth", ("zeus", "athena")),
    ],
)
def test_shipped_primary_members_are_what_a_player_expects(
    category: str, words: tuple[str, ...]
) -> None:
    members = load_lexicon().members(category)
    for word in words:
        assert word in members, word


@pytest.mark.parametrize(
    ("category", "words"),
    [
        # A verb first ("drew", "die", "kiss"), a person first ("weaver", "drake"), a
        # first name or a surname many share ("howard", "wayne", "bruce", "lloyd"), a
        # common word's plural ("sellers") or simply another thing ("sausage").
        ("Actors", ("drew", "howard", "stewart", "wayne", "lloyd", "tracy", "sellers")),
        ("Doctors", ("bruce", "harvey", "willis")),
        ("Tools", ("die", "beetle", "rounder", "bur")),
        ("Cakes", ("kiss",)),
        ("Birds", ("weaver", "dominique", "drake")),
        ("Glands", ("dug", "tit", "boob", "mamma")),
        ("Minerals", ("concentrate", "plasma", "jargon")),
        ("Crustaceans", ("slater", "britt")),
        ("Aircraft", ("sausage",)),
        ("Pasta", ("dumpling",)),
        ("Philosophers", ("schweitzer",)),
        ("Explosives", ("powder", "serpent", "payload")),
        ("Painters", ("reynolds", "blake")),
    ],
)
def test_shipped_primary_members_leave_out_words_a_player_reads_otherwise(
    category: str, words: tuple[str, ...]
) -> None:
    members = load_lexicon().members(category)
    assert not set(words) & set(members)


def test_lookup_finds_a_category_by_alias_and_a_name_wins_over_an_alias() -> None:
    lexicon = planted()
    assert lexicon.lookup("clothing") is lexicon.category("Garments")
    assert lexicon.lookup("Arbors") is lexicon.category("Trees")
    # "Trees" is Garments' alias here by mistake: the display name still decides.
    assert lexicon.lookup("Trees") is lexicon.category("Trees")


def test_lookup_in_the_shipped_lexicon_knows_wordnet_names_for_categories() -> None:
    lexicon = load_lexicon()
    assert lexicon.lookup("Clothing") is lexicon.category("Garments")
    assert lexicon.lookup("Feline") is lexicon.category("Cats")
    assert lexicon.lookup("Raptors") is lexicon.category("Birds of prey")
    assert lexicon.lookup("Greek gods") is lexicon.category("Gods of Greek myth")
    assert lexicon.lookup("Tree") is lexicon.category("Trees")
    assert lexicon.lookup("Romance") is None  # first a love affair, not the languages


def test_lookup_finds_a_category_by_name_in_any_case_or_number() -> None:
    lexicon = planted()
    assert lexicon.lookup("trees") is lexicon.category("Trees")
    assert lexicon.lookup("Tree") is lexicon.category("Trees")
    assert lexicon.lookup("instrument") is lexicon.category("Instruments")
    assert lexicon.lookup("Piano") is None
    assert lexicon.lookup("Tree frogs") is None


def test_lookup_in_the_shipped_lexicon_knows_singular_theme_lines() -> None:
    lexicon = load_lexicon()
    assert lexicon.lookup("Philosopher") is lexicon.category("Philosophers")
    assert lexicon.lookup("dog breed") is lexicon.category("Dog breeds")
    assert lexicon.lookup("Romance") is None


def test_every_shipped_member_can_be_embedded_offline() -> None:
    """The offline provider embeds from GloVe: a word outside its vocabulary would fail
    the whole theme it was drawn for."""
    from asyncpipe.io.vector_index import load_glove

    glove = load_glove()
    missing = sorted(
        word
        for category in load_lexicon().categories.values()
        for word in (*category.members, *category.secondary)
        if glove.row_of(word) is None
    )
    assert missing == []
