"""asyncpipe.stages.themes: reading a theme source and drawing a batch's themes from it."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest

from asyncpipe.errors import InputError
from asyncpipe.io.theme_source import read_theme_source
from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.history import History, PublishedBatch, PublishedGroup
from asyncpipe.settings.sections import PuzzleGeneration, Themes
from asyncpipe.stages.themes import ThemeSelection, select_themes
from tests.support import REFERENCE

NUMBERED = [f"Theme {number:02d}" for number in range(1, 41)]


def _source(tmp_path: Path, content: str | bytes, name: str = "themes.txt") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _generation(puzzles: int = 2, **settings: object) -> PuzzleGeneration:
    return PuzzleGeneration(total_puzzle_count=puzzles, themes_per_puzzle=4, **settings)


def _input_error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        read_theme_source(path)
    message = str(caught.value)
    assert str(path) in message, message
    assert "\n" not in message
    return message


# --- read_theme_source ------------------------------------------------------------------


def test_one_theme_per_line_and_multi_word_themes_stay_whole(tmp_path: Path) -> None:
    path = _source(tmp_path, "Birds\nMusical instruments\nFarm animals\n")
    themes, name = read_theme_source(path)
    assert themes == ["Birds", "Musical instruments", "Farm animals"]
    assert name == str(path)


def test_blank_lines_and_comment_lines_are_skipped(tmp_path: Path) -> None:
    path = _source(tmp_path, "# my themes\n\nBirds\n   \n  # indented comment\nFish\n\n")
    themes, _ = read_theme_source(path)
    assert themes == ["Birds", "Fish"]


def test_whitespace_inside_and_around_a_theme_is_collapsed(tmp_path: Path) -> None:
    path = _source(tmp_path, "  Musical \t  instruments  \r\nFarm\u00a0animals\n")
    themes, _ = read_theme_source(path)
    assert themes == ["Musical instruments", "Farm animals"]


def test_themes_are_nfc_normalised(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Café culture")
    assert decomposed != "Café culture"
    themes, _ = read_theme_source(_source(tmp_path, decomposed + "\n"))
    assert themes == ["Café culture"]
    assert unicodedata.is_normalized("NFC", themes[0])


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_theme(tmp_path: Path) -> None:
    path = _source(tmp_path, b"\xef\xbb\xbfBirds\nFish\n")
    themes, _ = read_theme_source(path)
    assert themes == ["Birds", "Fish"]


def test_a_missing_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    assert "not found" in _input_error(tmp_path / "absent.txt")


def test_a_directory_as_theme_source_is_an_input_error_naming_it(tmp_path: Path) -> None:
    assert "directory" in _input_error(tmp_path)


def test_an_empty_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    assert "no themes" in _input_error(_source(tmp_path, ""))


def test_a_whitespace_only_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    assert "no themes" in _input_error(_source(tmp_path, "  \n\t\n\n"))


def test_a_comments_only_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    assert "no themes" in _input_error(_source(tmp_path, "# Birds\n# Fish\n"))


def test_a_binary_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = _source(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert "binary" in _input_error(path)


def test_a_non_utf8_theme_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = _source(tmp_path, "Birds\nCaf\xe9 culture\n".encode("latin-1"))
    message = _input_error(path)
    assert "UTF-8" in message
    assert "offset 9" in message  # six bytes of "Birds" and newline, then "Caf"


def test_the_bad_byte_offset_counts_from_the_start_of_the_file_even_after_a_bom(
    tmp_path: Path,
) -> None:
    # Three BOM bytes, six of "Birds" and newline, three of "Caf": the bad byte is at 12.
    path = _source(tmp_path, b"\xef\xbb\xbfBirds\nCaf\xe9 culture\n")
    message = _input_error(path)
    assert "offset 12" in message


def test_the_builtin_theme_list_has_at_least_300_distinct_themes() -> None:
    themes, name = read_theme_source(None)
    assert name == "builtin"
    assert len(themes) >= 300
    assert len({theme.casefold() for theme in themes}) == len(themes)
    assert all(theme == theme.strip() and theme for theme in themes)


def test_the_older_pipelines_theme_file_reads_every_line(tmp_path: Path) -> None:
    copy = tmp_path / "wiki_categories_filtered"
    shutil.copyfile(REFERENCE / "wiki_categories_filtered", copy)
    themes, _ = read_theme_source(copy)
    assert len(themes) == 330
    assert themes[0] == "Research"


def test_every_builtin_theme_has_a_vector_in_glove(glove: VocabularyIndex) -> None:
    themes, _ = read_theme_source(None)
    unknown = [theme for theme in themes if glove.text_vector(theme) is None]
    assert unknown == []


# --- select_themes ----------------------------------------------------------------------


def test_the_same_seed_draws_the_same_themes() -> None:
    generation = _generation(random_seed=7)
    first = select_themes(NUMBERED, "test", Themes(), generation)
    second = select_themes(list(NUMBERED), "test", Themes(), generation)
    assert first.themes == second.themes
    assert first.spare_themes == second.spare_themes


def test_a_different_seed_draws_a_different_order() -> None:
    first = select_themes(NUMBERED, "test", Themes(), _generation(random_seed=1))
    second = select_themes(NUMBERED, "test", Themes(), _generation(random_seed=2))
    assert first.all_themes != second.all_themes


def test_random_selection_is_not_file_order() -> None:
    selection = select_themes(NUMBERED, "test", Themes(), _generation(random_seed=42))
    assert list(selection.themes) != NUMBERED[: len(selection.themes)]
    assert set(selection.themes) <= set(NUMBERED)


def test_sequential_selection_keeps_file_order() -> None:
    generation = _generation(theme_selection_method="sequential", random_seed=99)
    selection = select_themes(NUMBERED, "test", Themes(), generation)
    assert list(selection.themes) == NUMBERED[:8]
    assert list(selection.spare_themes) == NUMBERED[8 : 8 + len(selection.spare_themes)]
    assert selection.selection_method == "sequential"


def test_excluded_categories_are_dropped_ignoring_case() -> None:
    available = ["Research", "library SCIENCE", *NUMBERED[:10]]
    themes = Themes(exclude_categories=("research", "Library science"))
    generation = _generation(theme_selection_method="sequential")
    selection = select_themes(available, "test", themes, generation)
    assert "Research" not in selection.all_themes
    assert "library SCIENCE" not in selection.all_themes
    assert selection.available_count == 10


def test_themes_outside_the_length_limits_are_dropped() -> None:
    available = ["Ox", "Tea", "A rather long theme name", *NUMBERED[:8]]
    themes = Themes(min_theme_length=3, max_theme_length=10)
    generation = _generation(theme_selection_method="sequential")
    selection = select_themes(available, "test", themes, generation)
    assert "Ox" not in selection.all_themes
    assert "A rather long theme name" not in selection.all_themes
    assert selection.themes[0] == "Tea"
    assert selection.available_count == 9


def test_themes_differing_only_in_case_are_drawn_once() -> None:
    available = ["Birds", "BIRDS", "birds", *NUMBERED[:10]]
    generation = _generation(theme_selection_method="sequential")
    selection = select_themes(available, "test", Themes(), generation)
    folded = [theme.casefold() for theme in selection.all_themes]
    assert folded.count("birds") == 1
    assert selection.themes[0] == "Birds"
    assert selection.available_count == 11


def test_themes_without_letters_are_dropped() -> None:
    available = ["1990", "---", *NUMBERED[:8]]
    selection = select_themes(available, "test", Themes(), _generation())
    assert "1990" not in selection.all_themes
    assert "---" not in selection.all_themes


def test_spares_are_about_the_spare_fraction_and_disjoint_from_the_primary_themes() -> None:
    available = [f"Theme {number:03d}" for number in range(200)]
    generation = _generation(puzzles=10, spare_theme_fraction=0.25)
    selection = select_themes(available, "test", Themes(), generation)
    assert len(selection.themes) == 40
    assert len(selection.spare_themes) == 10
    assert not set(selection.themes) & set(selection.spare_themes)
    assert selection.all_themes == selection.themes + selection.spare_themes


def test_at_least_one_puzzles_worth_of_spares_is_drawn_for_a_small_batch() -> None:
    generation = _generation(puzzles=1, spare_theme_fraction=0.25)
    selection = select_themes(NUMBERED, "test", Themes(), generation)
    assert len(selection.themes) == 4
    assert len(selection.spare_themes) == 4
    assert not set(selection.themes) & set(selection.spare_themes)


def test_spares_are_limited_by_the_themes_left_over() -> None:
    generation = _generation(puzzles=2, spare_theme_fraction=1.0)
    selection = select_themes(NUMBERED[:10], "test", Themes(), generation)
    assert len(selection.themes) == 8
    assert len(selection.spare_themes) == 2


def test_too_few_eligible_themes_is_an_input_error_with_the_numbers() -> None:
    available = ["Research", *NUMBERED[:6]]
    themes = Themes(exclude_categories=("Research",))
    with pytest.raises(InputError) as caught:
        select_themes(available, "my_themes.txt", themes, _generation(puzzles=2))
    message = str(caught.value)
    assert "my_themes.txt" in message
    assert "2 puzzles" in message
    assert "need 8 themes" in message
    assert "only 6 of 7" in message


def test_default_settings_draw_the_default_batch_from_the_builtin_list() -> None:
    available, source = read_theme_source(None)
    selection = select_themes(available, source, Themes(), PuzzleGeneration())
    assert len(selection.themes) == 320
    assert len(selection.spare_themes) > 0
    assert len(set(selection.all_themes)) == len(selection.all_themes)


# --- ThemeSelection as JSON -------------------------------------------------------------


def test_to_json_holds_the_themes_the_count_the_method_the_seed_and_the_filters() -> None:
    themes = Themes(exclude_categories=("Research",), min_theme_length=2, max_theme_length=30)
    selection = select_themes(NUMBERED, "test", themes, _generation(random_seed=5))
    document = selection.to_json()
    assert document["themes"] == list(selection.themes)
    assert document["total_count"] == 8
    assert document["selection_method"] == "random"
    assert document["random_seed"] == 5
    assert document["filters"] == {
        "exclude_categories": ["Research"],
        "min_theme_length": 2,
        "max_theme_length": 30,
    }
    assert document["spare_themes"] == list(selection.spare_themes)


def test_to_json_and_from_json_round_trip_through_json_text() -> None:
    selection = select_themes(NUMBERED, "themes.txt", Themes(), _generation(random_seed=3))
    text = json.dumps(selection.to_json())
    assert ThemeSelection.from_json(json.loads(text)) == selection


def _published(*batches: list[str]) -> History:
    return History(
        tuple(
            PublishedBatch(
                f"batch-{number}",
                tuple(PublishedGroup(theme, ("a", "b", "c", "d")) for theme in themes),
            )
            for number, themes in enumerate(batches)
        )
    )


def test_the_draw_avoids_categories_of_recent_batches() -> None:
    recent = NUMBERED[:20]
    history = _published(recent[:10], recent[10:])
    selection = select_themes(
        NUMBERED, "numbered", Themes(avoid_recent_batches=2), _generation(puzzles=4), history
    )
    # 16 themes and 4 spares: exactly the 20 never used, none of the recent ones.
    assert set(selection.all_themes) == set(NUMBERED[20:])


def test_when_too_few_are_left_the_least_recently_used_come_back_first() -> None:
    oldest, older, newest = NUMBERED[:10], NUMBERED[10:25], NUMBERED[25:]
    history = _published(oldest, older, newest)
    selection = select_themes(
        NUMBERED, "numbered", Themes(avoid_recent_batches=7), _generation(puzzles=5), history
    )
    # 20 themes and 5 spares: the 10 of the oldest batch, then 15 of the next.
    assert set(selection.themes[:10]) == set(oldest)
    assert set(selection.all_themes) == set(oldest) | set(older)
    # Without a history the same seed draws another order: the history decides it.
    plain = select_themes(NUMBERED, "numbered", Themes(), _generation(puzzles=5))
    assert plain.all_themes != selection.all_themes


def test_a_history_leaves_the_number_of_puzzles_a_source_can_make_unchanged() -> None:
    history = _published(NUMBERED)
    selection = select_themes(NUMBERED, "numbered", Themes(), _generation(puzzles=10), history)
    assert len(selection.themes) == 40
    with pytest.raises(InputError, match="ask for at most 10 puzzles"):
        select_themes(NUMBERED, "numbered", Themes(), _generation(puzzles=11), history)
