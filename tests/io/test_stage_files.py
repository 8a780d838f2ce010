"""Reading back the files one stage leaves for the next: candidate failures keep their kind,
and the older pipeline's files load with defaults for what they do not record."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from asyncpipe.errors import InputError
from asyncpipe.io.stage_files import load_candidates, load_selection
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.run.checkpoint import inputs_digest
from asyncpipe.settings.sections import Params
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.themes import UNRECORDED
from tests.support import REFERENCE

#: The first themes of the older pipeline's own theme source.
OLDER_THEMES = (REFERENCE / "wiki_categories_filtered").read_text(encoding="utf-8").split()[:8]


def write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def defaults_lines(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if "defaulted" in record.getMessage() and str(path) in record.getMessage()
    ]


def older_selection(**fields: Any) -> dict[str, Any]:
    """selected_themes.json as the older pipeline's theme selector wrote it."""
    document = {
        "themes": OLDER_THEMES,
        "total_count": len(OLDER_THEMES),
        "selection_method": "random",
        "random_seed": 42,
        "excluded_categories": ["General reference", "Research"],
        "min_theme_length": 3,
        "config": {
            "total_puzzle_count": 2,
            "source_file": "../data/categories/wiki_categories_filtered",
        },
    }
    document.update(fields)
    return {key: value for key, value in document.items() if value is not ...}


def older_candidates(themes: dict[str, Any]) -> dict[str, Any]:
    """candidate_words.json as the older pipeline's word selector wrote it."""
    return {
        "candidates": themes,
        "metadata": {
            "total_themes": len(themes) + 1,
            "successful_themes": len(themes),
            "failed_themes": [
                {"theme": "Prefixes", "reason": "No candidates found above similarity threshold"}
            ],
            "processing_time": 1.5,
            "config": {
                "candidate_words_per_theme": 50,
                "min_similarity_threshold": 0.3,
                "vector_source": "../../themes_index",
            },
        },
    }


@pytest.mark.parametrize(
    "fields",
    [{}, {"random_seed": None}, {"selection_method": ..., "random_seed": ...}],
    ids=["as-written", "seed-null", "no-method-no-seed"],
)
def test_an_older_selected_themes_file_loads_with_its_themes_in_order(
    tmp_path: Path, fields: dict[str, Any]
) -> None:
    workspace = Workspace(tmp_path, Params())
    write(workspace.selected_themes, older_selection(**fields))

    selection = load_selection(workspace)

    assert selection.themes == tuple(OLDER_THEMES)
    assert selection.spare_themes == ()
    assert selection.all_themes == tuple(OLDER_THEMES)


def test_an_older_selection_without_method_or_seed_gets_fixed_defaults_and_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = Workspace(tmp_path, Params())
    write(workspace.selected_themes, older_selection(selection_method=..., random_seed=...))

    with caplog.at_level(logging.INFO, logger="asyncpipe"):
        first = load_selection(workspace)
        lines = defaults_lines(caplog, workspace.selected_themes)
        assert len(lines) == 1
        for field in ("spare_themes", "selection_method", "random_seed", "filters", "source"):
            assert field in lines[0]
        assert all(record.levelno == logging.INFO for record in caplog.records)
        second = load_selection(workspace)

    assert (first.selection_method, first.random_seed) == (UNRECORDED, None)
    assert first == second
    candidates = {theme: ("word",) for theme in OLDER_THEMES}
    assert inputs_digest(first, candidates) == inputs_digest(second, candidates)


def test_a_selection_this_version_wrote_logs_no_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = Workspace(tmp_path, Params())
    document = {
        "themes": ["Birds"],
        "spare_themes": ["Trees"],
        "total_count": 1,
        "spare_count": 1,
        "selection_method": "random",
        "random_seed": 42,
        "filters": {},
        "source": "builtin",
        "available_count": 300,
    }
    write(workspace.selected_themes, document)

    with caplog.at_level(logging.INFO, logger="asyncpipe"):
        selection = load_selection(workspace)

    assert selection.random_seed == 42
    assert defaults_lines(caplog, workspace.selected_themes) == []


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        ({"selection_method": "random", "random_seed": 42}, "'themes'"),
        ({"themes": OLDER_THEMES, "random_seed": "42"}, "a whole number under 'random_seed'"),
    ],
)
def test_a_selection_without_its_themes_or_with_a_wrong_seed_is_still_refused(
    tmp_path: Path, document: dict[str, Any], missing: str
) -> None:
    workspace = Workspace(tmp_path, Params())
    write(workspace.selected_themes, document)

    with pytest.raises(InputError, match="not a selected-themes file") as raised:
        load_selection(workspace)
    assert missing in str(raised.value)


def test_the_failed_themes_of_a_candidates_file_are_read_as_themes_without_candidates(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path, Params())
    reason = "no word of the theme is in the vector index 'glove'"
    document = {
        "candidates": {"Birds": {"words": ["owl", "wren"], "similarity_scores": [0.7, 0.6]}},
        "metadata": {"failed_themes": {"Zzqxv Blorft": reason}},
    }
    write(workspace.candidate_words, document)

    result = load_candidates(workspace)

    assert result.failed_themes == {"Zzqxv Blorft": ThemeFailure(FailureKind.NO_CANDIDATES, reason)}
    assert result.candidates["Birds"].words == ("owl", "wren")


def test_a_candidates_file_without_metadata_has_no_failed_themes(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path, Params())
    write(workspace.candidate_words, {"candidates": {}})

    assert load_candidates(workspace).failed_themes == {}


def test_an_older_candidates_file_loads_its_words_and_its_list_of_failed_themes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = Workspace(tmp_path, Params())
    entries = {
        "Books": {
            "words": ["novels", "novel", "Novel", "essays"],
            "similarity_scores": [0.81, 0.8, 0.7, 0.6],
            "word_count": 4,
        },
        "Letters": {"words": ["mail", "postcards"], "similarity_scores": [0.6, 0.5]},
    }
    write(workspace.candidate_words, older_candidates(entries))

    with caplog.at_level(logging.INFO, logger="asyncpipe"):
        result = load_candidates(workspace)

    assert result.candidates["Books"].words == ("novels", "novel", "Novel", "essays")
    assert tuple(result.candidates["Books"].similarity_scores) == (0.81, 0.8, 0.7, 0.6)
    assert result.candidates["Letters"].source == "neighbours"
    assert result.failed_themes == {
        "Prefixes": ThemeFailure(
            FailureKind.NO_CANDIDATES, "No candidates found above similarity threshold"
        )
    }
    assert defaults_lines(caplog, workspace.candidate_words) == []


def test_neighbours_without_scores_load_unscored_with_one_info_line_for_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = Workspace(tmp_path, Params())
    entries = {theme: {"words": ["one", "two", "three", "four"]} for theme in OLDER_THEMES[:5]}
    write(workspace.candidate_words, {"candidates": entries})

    with caplog.at_level(logging.INFO, logger="asyncpipe"):
        result = load_candidates(workspace)

    assert [found.words for found in result.candidates.values()] == [
        ("one", "two", "three", "four")
    ] * 5
    assert all(len(found.similarity_scores) == 0 for found in result.candidates.values())
    (line,) = defaults_lines(caplog, workspace.candidate_words)
    assert "metadata" in line
    assert "similarity_scores of 5 themes" in line
    assert "and 2 more" in line


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ({"similarity_scores": [0.5]}, "lacks a 'words' list"),
        ({"words": ["owl", 7]}, "not a string"),
        ({"words": ["owl", "wren"], "similarity_scores": [0.5]}, "do not pair"),
        ({"words": ["owl", "wren"], "similarity_scores": [0.5, "high"]}, "not a number"),
        ({"words": ["owl", "wren"], "similarity_scores": [0.5, True]}, "not a number"),
        ({"words": ["owl"], "source": "members"}, "lacks its 'category'"),
    ],
)
def test_a_candidates_entry_without_usable_words_is_refused_naming_the_theme(
    tmp_path: Path, entry: dict[str, Any], what: str
) -> None:
    workspace = Workspace(tmp_path, Params())
    write(workspace.candidate_words, {"candidates": {"Birds": entry}})

    with pytest.raises(InputError, match="not a candidate-words file") as raised:
        load_candidates(workspace)
    assert "'Birds'" in str(raised.value) and what in str(raised.value)
