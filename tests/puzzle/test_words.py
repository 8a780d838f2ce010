"""asyncpipe.puzzle.words: which words may sit on a grid, and when two words count as one."""

from __future__ import annotations

import pytest

from asyncpipe.puzzle.words import (
    ThemeVariants,
    VariantKeys,
    distinct_by_variant,
    is_puzzle_word,
    is_variant_of_theme,
    stopwords,
    theme_words,
    variant_key,
)


@pytest.mark.parametrize("word", ["cat", "zebra", "orchestra"])
def test_lowercase_ascii_words_of_three_letters_or_more_are_puzzle_words(word: str) -> None:
    assert is_puzzle_word(word)


@pytest.mark.parametrize(
    "word",
    ["Cat", "CAT", "café", "x-ray", "b52", "rock'n'roll", "new york", "", "ox"],
)
def test_capitals_accents_digits_punctuation_spaces_and_short_words_are_not_puzzle_words(
    word: str,
) -> None:
    assert not is_puzzle_word(word)


def test_min_length_is_the_shortest_word_accepted() -> None:
    assert is_puzzle_word("ox", min_length=2)
    assert not is_puzzle_word("cat", min_length=4)
    assert is_puzzle_word("lion", min_length=4)


@pytest.mark.parametrize("word", ["the", "about", "which", "another"])
def test_stopwords_are_not_puzzle_words(word: str) -> None:
    assert word in stopwords()
    assert not is_puzzle_word(word)


def test_shipped_stopword_list_is_lowercase_and_substantial() -> None:
    words = stopwords()
    assert len(words) >= 100
    assert all(word == word.lower() and word == word.strip() for word in words)


def test_inflections_of_one_verb_share_a_variant_key() -> None:
    keys = {variant_key(word) for word in ("dance", "dances", "dancing", "danced")}
    assert len(keys) == 1


def test_singular_and_plural_share_a_variant_key_whatever_the_case() -> None:
    assert variant_key("bird") == variant_key("birds") == variant_key("Birds")


def test_unrelated_words_have_different_variant_keys() -> None:
    assert variant_key("bird") != variant_key("robin")
    assert variant_key("dance") != variant_key("dine")


def test_theme_words_lowercases_and_splits_on_spaces_and_punctuation() -> None:
    assert theme_words("Musical instruments") == ["musical", "instruments"]
    assert theme_words("Arts, crafts & hobbies") == ["arts", "crafts", "hobbies"]


def test_theme_words_keeps_apostrophes_and_accents_inside_a_word() -> None:
    assert theme_words("Children's books") == ["children's", "books"]
    assert theme_words("Café culture") == ["café", "culture"]


@pytest.mark.parametrize("word", ["bird", "birds", "birding", "Birds"])
def test_a_single_word_theme_covers_its_own_word_and_its_forms(word: str) -> None:
    assert is_variant_of_theme(word, "Birds")


@pytest.mark.parametrize("word", ["robin", "sparrow", "feather"])
def test_a_single_word_theme_does_not_cover_related_words(word: str) -> None:
    assert not is_variant_of_theme(word, "Birds")


@pytest.mark.parametrize("word", ["instrument", "instruments", "musical", "music", "musician"])
def test_a_multi_word_theme_covers_forms_of_every_one_of_its_words(word: str) -> None:
    assert is_variant_of_theme(word, "Musical instruments")


@pytest.mark.parametrize("word", ["guitar", "violin", "orchestra"])
def test_a_multi_word_theme_does_not_cover_members_of_the_theme(word: str) -> None:
    assert not is_variant_of_theme(word, "Musical instruments")


def test_a_short_theme_stem_covers_its_forms_but_not_longer_words_it_begins() -> None:
    # "art" is under four letters: too generic to rule out "artist" or "artistic".
    variants = ThemeVariants("Art")
    assert variants.covers("art")
    assert variants.covers("arts")
    assert not variants.covers("artist")
    assert not variants.covers("artistic")


def test_a_theme_stem_of_four_letters_or_more_covers_longer_words_it_begins() -> None:
    # Documented in asyncpipe.puzzle.words: "card" rules out "cardboard", "fish" rules out "fishing".
    assert is_variant_of_theme("cardboard", "Card games")
    assert is_variant_of_theme("fishing", "Fish")
    assert is_variant_of_theme("fisher", "Fish")


def test_a_candidate_whose_stem_begins_a_theme_word_is_covered() -> None:
    # "mount" (stem of five letters) is the start of "mountains": one word inside the other.
    assert is_variant_of_theme("mount", "Mountains")
    assert not is_variant_of_theme("hill", "Mountains")


def test_theme_variants_covers_the_same_words_as_is_variant_of_theme() -> None:
    variants = ThemeVariants("Card games")
    for word in ("card", "cards", "games", "gaming", "poker", "chess", "cardboard"):
        assert variants.covers(word) == is_variant_of_theme(word, "Card games"), word


def test_distinct_by_variant_keeps_the_first_word_of_each_family_in_order() -> None:
    words = ["dances", "bird", "dance", "robin", "dancing", "birds", "danced"]
    assert distinct_by_variant(words) == ["dances", "bird", "robin"]


def test_distinct_by_variant_of_distinct_words_changes_nothing() -> None:
    words = ["apple", "banana", "cherry"]
    assert distinct_by_variant(iter(words)) == words


# Forms that must share one key: regular, -es, -ies, -oes and -ves plurals, irregular
# plurals from WordNet's noun.exc, and inflections from verb.exc and the stemmer.
SAME_WORD = [
    ("bus", "buses"), ("box", "boxes"), ("church", "churches"), ("goose", "geese"),
    ("mouse", "mice"), ("wolf", "wolves"), ("leaf", "leaves"), ("knife", "knives"),
    ("child", "children"), ("analysis", "analyses"), ("cactus", "cacti"),
    ("crisis", "crises"), ("run", "ran"), ("sing", "sang"), ("sing", "sung"),
    ("sang", "sung"), ("go", "went"), ("tooth", "teeth"), ("foot", "feet"), ("man", "men"),
    ("woman", "women"), ("person", "people"), ("ox", "oxen"), ("city", "cities"),
    ("berry", "berries"), ("hero", "heroes"), ("potato", "potatoes"), ("dance", "dances"),
    ("dance", "dancing"), ("dance", "danced"), ("lead", "led"), ("gas", "gases"),
    ("rose", "roses"), ("base", "bases"), ("horse", "horses"), ("house", "houses"),
    ("lens", "lenses"), ("glass", "glasses"), ("quiz", "quizzes"), ("fox", "foxes"),
    ("tax", "taxes"), ("dish", "dishes"), ("brush", "brushes"), ("watch", "watches"),
    ("virus", "viruses"), ("bonus", "bonuses"), ("campus", "campuses"), ("class", "classes"),
    ("nose", "noses"), ("vase", "vases"), ("case", "cases"), ("dose", "doses"),
    ("tomato", "tomatoes"), ("echo", "echoes"), ("baby", "babies"), ("lady", "ladies"),
    ("fly", "flies"), ("spy", "spies"), ("sky", "skies"), ("party", "parties"),
    ("cherry", "cherries"), ("country", "countries"), ("half", "halves"), ("calf", "calves"),
    ("shelf", "shelves"), ("thief", "thieves"), ("wife", "wives"), ("life", "lives"),
    ("loaf", "loaves"), ("scarf", "scarves"), ("elf", "elves"), ("hoof", "hooves"),
    ("louse", "lice"), ("fungus", "fungi"), ("nucleus", "nuclei"), ("radius", "radii"),
    ("thesis", "theses"), ("oasis", "oases"), ("medium", "media"), ("phenomenon", "phenomena"),
    ("criterion", "criteria"), ("fireman", "firemen"), ("policeman", "policemen"),
    ("swim", "swam"), ("swim", "swimming"), ("drink", "drank"), ("drink", "drunk"),
    ("eat", "ate"), ("eat", "eaten"), ("write", "wrote"), ("write", "written"),
    ("ride", "rode"), ("fly", "flew"), ("throw", "threw"), ("begin", "began"),
    ("catch", "caught"), ("teach", "taught"), ("buy", "bought"), ("think", "thought"),
    ("bring", "brought"), ("sleep", "slept"), ("run", "running"), ("go", "going"),
    ("take", "took"), ("give", "gave"), ("break", "broke"), ("freeze", "froze"),
    ("dive", "diving"), ("cat", "Cats"), ("bird", "BIRDS"),
    # British and American spellings of one word.
    ("metre", "meter"), ("metres", "meters"), ("litre", "liter"), ("theatre", "theater"),
    ("centre", "center"), ("sabre", "saber"), ("fibre", "fiber"), ("colour", "color"),
    ("flavour", "flavor"), ("harbour", "harbor"), ("neighbours", "neighbors"),
    ("catalogue", "catalog"), ("realise", "realize"), ("organisation", "organization"),
    ("analyse", "analyze"),
]

# Distinct words that may share a grid: a merge here would wrongly keep them apart.
DIFFERENT_WORDS = [
    ("bus", "bust"), ("ran", "rand"), ("news", "new"), ("bus", "base"), ("bird", "robin"),
    ("dance", "dine"), ("dove", "dive"), ("saw", "see"), ("felt", "feel"), ("rose", "rise"),
    ("ground", "grind"), ("omen", "oman"), ("wound", "wind"), ("spoke", "speak"),
    ("stove", "stave"), ("bass", "base"), ("gas", "gasp"), ("hose", "house"),
    ("cat", "cattle"), ("car", "card"), ("pin", "pine"), ("hop", "hope"), ("plan", "plane"),
    ("tap", "tape"), ("bat", "bath"), ("sea", "seal"), ("man", "mane"), ("men", "mend"),
    ("ox", "box"), ("mice", "mica"), ("geese", "cheese"), ("lens", "lend"),
    ("horse", "hoarse"), ("nose", "noise"), ("glass", "grass"), ("sing", "sign"),
    ("went", "want"), ("feet", "fleet"), ("teeth", "tenth"), ("people", "pupil"),
    ("city", "cite"), ("hero", "her"), ("leaf", "leap"), ("wolf", "golf"),
    ("acre", "acer"), ("ogre", "oger"), ("four", "for"), ("tour", "tor"), ("genre", "gene"),
]


@pytest.mark.parametrize(("word", "form"), SAME_WORD)
def test_plurals_and_inflections_share_a_variant_key(word: str, form: str) -> None:
    assert variant_key(word) == variant_key(form)


@pytest.mark.parametrize(("word", "other"), DIFFERENT_WORDS)
def test_distinct_words_that_look_alike_keep_distinct_variant_keys(word: str, other: str) -> None:
    assert variant_key(word) != variant_key(other)


def test_the_pair_lists_are_long_enough_to_mean_something() -> None:
    assert len(SAME_WORD) >= 100
    assert len(DIFFERENT_WORDS) >= 30


@pytest.mark.parametrize(
    ("tile", "theme"),
    [("tugboat", "Boats"), ("rattlesnake", "Snakes"), ("bobcat", "Cats"),
     ("basketball", "Balls"), ("racehorse", "Horses"), ("cheesecake", "Cakes")],
)  # fmt: skip
def test_a_compound_ending_in_a_theme_word_gives_the_group_away(tile: str, theme: str) -> None:
    assert is_variant_of_theme(tile, theme)


@pytest.mark.parametrize(
    ("tile", "theme"), [("oak", "Trees"), ("cat", "Scats"), ("snake", "Rattlesnakes")]
)
def test_words_not_ending_in_a_theme_word_are_no_compounds_of_it(tile: str, theme: str) -> None:
    assert not is_variant_of_theme(tile, theme)


def test_variant_keys_take_their_irregular_forms_from_the_table_given() -> None:
    keys = VariantKeys({"geese": ("goose",), "dove": ("dive",)})
    assert keys("geese") == keys("goose")
    assert keys("mice") != keys("mouse")  # not in this table
    assert keys("dove") != keys("dive")  # an everyday noun keeps its own key


def test_a_word_of_its_own_is_not_read_as_a_form_of_another() -> None:
    keys = VariantKeys({"kent": ("ken",)}, own_words={"kent"})
    assert keys("kent") != keys("ken")
    assert VariantKeys({"kent": ("ken",)})("kent") == keys("ken")


@pytest.mark.parametrize(("tile", "theme"), [("goose", "Geese"), ("mouse", "Mice"),
                                             ("geese", "Goose"), ("child", "Children"),
                                             ("buses", "Bus stations")])
def test_a_tile_that_is_a_form_of_a_theme_word_is_covered(tile: str, theme: str) -> None:
    assert is_variant_of_theme(tile, theme)
    assert ThemeVariants(theme).covers(tile)


def test_distinct_by_variant_drops_irregular_and_es_plurals() -> None:
    words = ["buses", "tram", "bus", "rail", "geese", "goose", "mouse", "mice"]
    assert distinct_by_variant(words) == ["buses", "tram", "rail", "geese", "mouse"]
