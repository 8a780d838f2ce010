"""assemble_puzzles on hand-made ranked themes: grid rules, replacements, running out, order."""

from __future__ import annotations

from collections.abc import Sequence

from asyncpipe.puzzle.assembly import AssemblyResult, assemble_puzzles
from asyncpipe.puzzle.ranking import RankedTheme
from asyncpipe.puzzle.words import is_variant_of_theme, variant_key


def ranked(theme: str, words: Sequence[str]) -> RankedTheme:
    """A ranked theme whose words are already best first, scores falling by 0.01."""
    scores = tuple(round(0.9 - 0.01 * position, 2) for position in range(len(words)))
    return RankedTheme(theme, tuple(words), scores, tuple(range(len(words))))


def filler(theme: str, code: str, count: int = 6) -> RankedTheme:
    """A theme with `count` made-up words no other filler theme shares (qa1x, qa2x, ...)."""
    return ranked(theme, [f"{code}{number}x" for number in range(1, count + 1)])


def assert_valid_puzzles(
    result: AssemblyResult, themes_per_puzzle: int, words_per_theme: int
) -> None:
    for puzzle in result.puzzles:
        assert len(puzzle.groups) == themes_per_puzzle
        assert all(len(group.words) == words_per_theme for group in puzzle.groups)
        assert all(len(group.scores) == words_per_theme for group in puzzle.groups)
        words = puzzle.words
        assert len(words) == themes_per_puzzle * words_per_theme
        assert len(set(words)) == len(words)
        keys = [variant_key(word) for word in words]
        assert len(set(keys)) == len(keys), f"two forms of one word in {words}"
        assert len(set(puzzle.themes)) == themes_per_puzzle
        for word in words:
            for theme in puzzle.themes:
                assert not is_variant_of_theme(word, theme), f"{word!r} names the theme {theme!r}"


#: Variant families: each theme below ranks a different form of each family first.
FAMILIES = [
    ("dance", "dances", "dancing", "danced"),
    ("song", "songs", "Song", "SONGS"),
    ("rhythm", "rhythms", "Rhythm", "RHYTHMS"),
    ("drum", "drums", "drumming", "drummed"),
    ("melody", "melodies", "Melody", "MELODY"),
]


def crowded(letters: str) -> list[RankedTheme]:
    """Themes that all want the same five families first, then four words of their own."""
    return [
        ranked(
            f"Theme {letter}",
            [family[index % 4] for family in FAMILIES]
            + [f"q{letter.lower()}{number}x" for number in range(1, 5)],
        )
        for index, letter in enumerate(letters)
    ]


def test_every_puzzle_has_the_configured_groups_of_distinct_words() -> None:
    # Every theme draws on one pool full of variant families, so the rules do the work.
    themes = crowded("ABCDEFGH")

    result = assemble_puzzles(themes, puzzle_count=2, themes_per_puzzle=4, words_per_theme=4)

    assert len(result.puzzles) == 2
    assert result.failed_puzzles == {}
    assert_valid_puzzles(result, themes_per_puzzle=4, words_per_theme=4)
    first_puzzle = result.puzzles[0].groups
    assert first_puzzle[0].words == ("dance", "song", "rhythm", "drum")
    assert first_puzzle[1].words == ("melodies", "qb1x", "qb2x", "qb3x")


def test_other_puzzle_shapes_follow_the_arguments() -> None:
    themes = [filler(f"Theme {letter}", f"q{letter.lower()}", count=5) for letter in "ABCDEFGHI"]

    result = assemble_puzzles(themes, puzzle_count=3, themes_per_puzzle=3, words_per_theme=5)

    assert len(result.puzzles) == 3
    assert_valid_puzzles(result, themes_per_puzzle=3, words_per_theme=5)


def test_a_word_wanted_by_two_themes_goes_to_the_first_and_the_second_takes_its_next_word() -> None:
    first = ranked("Ballet", ["pirouette", "tutu", "pointe", "barre", "plie"])
    second = ranked("Gymnastics", ["pirouette", "vault", "beam", "floor", "rings"])
    themes = [first, second, filler("Theme C", "qc"), filler("Theme D", "qd")]

    result = assemble_puzzles(themes, puzzle_count=1, themes_per_puzzle=4, words_per_theme=4)

    groups = result.puzzles[0].groups
    assert groups[0].words == ("pirouette", "tutu", "pointe", "barre")
    assert groups[1].words == ("vault", "beam", "floor", "rings")
    assert groups[1].scores == (0.89, 0.88, 0.87, 0.86)


def test_an_inflection_of_a_word_already_on_the_grid_is_skipped() -> None:
    first = ranked("Ballet", ["dancing", "tutu", "pointe", "barre"])
    second = ranked("Parties", ["Dances", "music", "cake", "balloons", "games"])
    themes = [first, second, filler("Theme C", "qc"), filler("Theme D", "qd")]

    result = assemble_puzzles(themes, puzzle_count=1, themes_per_puzzle=4, words_per_theme=4)

    assert result.puzzles[0].groups[1].words == ("music", "cake", "balloons", "games")


def test_a_word_that_is_a_form_of_another_themes_name_in_the_puzzle_is_skipped() -> None:
    birds = ranked("Birds", ["sparrow", "eagle", "robin", "wren"])
    pets = ranked("Pets", ["dog", "bird", "cat", "hamster", "rabbit"])
    themes = [birds, pets, filler("Theme C", "qc"), filler("Theme D", "qd")]

    result = assemble_puzzles(themes, puzzle_count=1, themes_per_puzzle=4, words_per_theme=4)

    assert result.puzzles[0].groups[1].words == ("dog", "cat", "hamster", "rabbit")
    assert_valid_puzzles(result, themes_per_puzzle=4, words_per_theme=4)


def test_a_theme_named_by_a_word_already_on_the_grid_waits_for_the_next_puzzle() -> None:
    pets = ranked("Pets", ["dog", "birds", "cat", "hamster", "rabbit"])
    birds = ranked("Birds", ["sparrow", "eagle", "robin", "wren"])
    themes = [
        pets,
        birds,
        filler("Theme C", "qc"),
        filler("Theme D", "qd"),
        filler("Theme E", "qe"),
        filler("Theme F", "qf"),
        filler("Theme G", "qg"),
        filler("Theme H", "qh"),
    ]

    result = assemble_puzzles(themes, puzzle_count=2, themes_per_puzzle=4, words_per_theme=4)

    assert len(result.puzzles) == 2
    assert_valid_puzzles(result, themes_per_puzzle=4, words_per_theme=4)
    assert result.puzzles[0].themes == ["Pets", "Theme C", "Theme D", "Theme E"]
    assert result.puzzles[1].themes == ["Birds", "Theme F", "Theme G", "Theme H"]
    assert result.failed_themes == {}


def test_a_theme_crowded_out_of_one_puzzle_is_held_over_to_the_next() -> None:
    first = ranked("Ballet", ["tutu", "pointe", "barre", "plie", "jete"])
    # Its only words are the first theme's: it cannot sit beside it, but can elsewhere.
    crowded = ranked("Costumes", ["tutu", "pointe", "barre", "plie"])
    themes = [
        first,
        crowded,
        filler("Theme C", "qc"),
        filler("Theme D", "qd"),
        filler("Theme E", "qe"),
        filler("Theme F", "qf"),
        filler("Theme G", "qg"),
        filler("Theme H", "qh"),
    ]

    result = assemble_puzzles(themes, puzzle_count=2, themes_per_puzzle=4, words_per_theme=4)

    assert result.puzzles[0].themes == ["Ballet", "Theme C", "Theme D", "Theme E"]
    assert result.puzzles[1].themes == ["Costumes", "Theme F", "Theme G", "Theme H"]
    assert result.puzzles[1].groups[0].words == ("tutu", "pointe", "barre", "plie")
    assert result.failed_themes == {}


def test_a_theme_with_too_few_words_fails_with_a_reason_and_the_next_theme_replaces_it() -> None:
    themes = [
        filler("Theme A", "qa"),
        ranked("Thin", ["alpha", "beta", "gamma"]),
        filler("Theme C", "qc"),
        filler("Theme D", "qd"),
        filler("Theme E", "qe"),
        filler("Theme F", "qf"),
        filler("Theme G", "qg"),
        filler("Theme H", "qh"),
        filler("Theme I", "qi"),
    ]

    result = assemble_puzzles(themes, puzzle_count=2, themes_per_puzzle=4, words_per_theme=4)

    assert set(result.failed_themes) == {"Thin"}
    assert "3" in result.failed_themes["Thin"] and "4" in result.failed_themes["Thin"]
    assert len(result.puzzles) == 2
    assert result.failed_puzzles == {}
    assert result.puzzles[0].themes == ["Theme A", "Theme C", "Theme D", "Theme E"]
    assert result.puzzles[1].themes == ["Theme F", "Theme G", "Theme H", "Theme I"]
    assert all("Thin" not in puzzle.themes for puzzle in result.puzzles)


def test_running_out_of_themes_names_the_missing_puzzles_and_the_leftover_themes() -> None:
    themes = [filler(f"Theme {letter}", f"q{letter.lower()}") for letter in "ABCDEFG"]

    result = assemble_puzzles(themes, puzzle_count=3, themes_per_puzzle=4, words_per_theme=4)

    assert len(result.puzzles) == 1
    assert set(result.failed_puzzles) == {"puzzle_2", "puzzle_3"}
    assert all("ran out of themes" in reason for reason in result.failed_puzzles.values())
    assert result.unused_themes == ("Theme E", "Theme F", "Theme G")


def test_a_batch_that_completes_leaves_the_remaining_themes_unused() -> None:
    themes = [filler(f"Theme {letter}", f"q{letter.lower()}") for letter in "ABCDEF"]

    result = assemble_puzzles(themes, puzzle_count=1, themes_per_puzzle=4, words_per_theme=4)

    assert len(result.puzzles) == 1
    assert result.failed_puzzles == {}
    assert result.unused_themes == ("Theme E", "Theme F")


def test_themes_are_used_in_the_given_order() -> None:
    letters = "HGFEDCBA"
    themes = [filler(f"Theme {letter}", f"q{letter.lower()}") for letter in letters]

    result = assemble_puzzles(themes, puzzle_count=2, themes_per_puzzle=4, words_per_theme=4)

    assert [puzzle.themes for puzzle in result.puzzles] == [
        [f"Theme {letter}" for letter in letters[:4]],
        [f"Theme {letter}" for letter in letters[4:]],
    ]
    assert result.puzzles[0].groups[0].words == ("qh1x", "qh2x", "qh3x", "qh4x")


def test_the_same_ranked_themes_always_give_the_same_puzzles() -> None:
    first = assemble_puzzles(crowded("ABCDEFGHIJKL"), 3, themes_per_puzzle=4, words_per_theme=4)
    second = assemble_puzzles(crowded("ABCDEFGHIJKL"), 3, themes_per_puzzle=4, words_per_theme=4)

    assert first == second
    assert len(first.puzzles) == 3


def test_a_word_closer_to_another_theme_is_swapped_for_the_next_candidate() -> None:
    themes = [
        ranked("Birds", ["robin", "wren", "crane", "finch", "sparrow"]),
        ranked("Machines", ["lever", "pulley", "winch", "gear", "motor"]),
        filler("Alpha", "qa"),
        filler("Beta", "qb"),
    ]
    # "crane" is a bird, but it sits closer to the Machines theme.
    belongs_elsewhere = {("crane", "Birds", "Machines")}

    def closer_elsewhere(word: str, own: str, other: str) -> bool:
        return (word, own, other) in belongs_elsewhere

    plain = assemble_puzzles(themes, 1, 4, 4)
    kept_home = assemble_puzzles(themes, 1, 4, 4, closer_elsewhere=closer_elsewhere)

    assert plain.puzzles[0].groups[0].words == ("robin", "wren", "crane", "finch")
    birds = kept_home.puzzles[0].groups[0]
    assert birds.words == ("robin", "wren", "finch", "sparrow")
    assert birds.scores == (0.9, 0.89, 0.87, 0.86)  # each word keeps its own score
    assert kept_home.puzzles[0].groups[1:] == plain.puzzles[0].groups[1:]
    assert_valid_puzzles(kept_home, 4, 4)


def test_a_group_keeps_a_misplaced_word_when_its_candidates_run_out() -> None:
    themes = [
        ranked("Birds", ["robin", "wren", "crane", "finch"]),  # no fifth candidate
        ranked("Machines", ["lever", "pulley", "winch", "gear"]),
        filler("Alpha", "qa"),
        filler("Beta", "qb"),
    ]

    def closer_elsewhere(word: str, own: str, other: str) -> bool:
        return (word, own, other) == ("crane", "Birds", "Machines")

    result = assemble_puzzles(themes, 1, 4, 4, closer_elsewhere=closer_elsewhere)

    assert result.puzzles[0].groups[0].words == ("robin", "wren", "crane", "finch")


def test_a_replacement_word_never_repeats_a_word_of_another_group() -> None:
    themes = [
        ranked("Birds", ["robin", "crane", "wren", "finch", "lever", "sparrow"]),
        ranked("Machines", ["lever", "pulley", "winch", "gear"]),
        filler("Alpha", "qa"),
        filler("Beta", "qb"),
    ]

    def closer_elsewhere(word: str, own: str, other: str) -> bool:
        return (word, own, other) == ("crane", "Birds", "Machines")

    result = assemble_puzzles(themes, 1, 4, 4, closer_elsewhere=closer_elsewhere)

    assert result.puzzles[0].groups[0].words == ("robin", "wren", "finch", "sparrow")
    assert_valid_puzzles(result, 4, 4)
