"""The pipeline's handling of failed themes: typed from the start, kinds decide."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.run.pipeline import _puzzle_sets, _usable_themes, _warn_embedding_failures
from asyncpipe.settings.sections import Params, PuzzleGeneration
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.candidates import CandidateSearchResult, ThemeCandidates
from asyncpipe.stages.themes import ThemeSelection
from tests.io.test_puzzle_sets import puzzle, score


def test_themes_without_enough_candidates_are_out_with_their_kind() -> None:
    selection = ThemeSelection(
        ("Birds", "Thin", "Unknown"), ("Unsearched",), "random", 1, {}, "x", 4
    )
    unknown = ThemeFailure(FailureKind.NO_CANDIDATES, "no word of the theme is in the index")
    candidates = CandidateSearchResult(
        candidates={
            "Birds": ThemeCandidates(("owl", "wren", "kite", "rook"), (0.9, 0.8, 0.7, 0.6)),
            "Thin": ThemeCandidates(("one", "two"), (0.9, 0.8)),
        },
        failed_themes={"Unknown": unknown},
    )

    usable, failed = _usable_themes(selection, candidates, PuzzleGeneration())

    assert list(usable) == ["Birds"]
    assert failed["Unknown"] == unknown
    assert failed["Thin"] == ThemeFailure(
        FailureKind.TOO_FEW_CANDIDATES, "only 2 candidate words, a group needs 4"
    )
    assert failed["Unsearched"].kind is FailureKind.NO_CANDIDATES
    assert list(failed) == ["Unknown", "Thin", "Unsearched"]


def test_the_embedding_warning_counts_failures_by_kind_whatever_their_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = {
        "A": ThemeFailure(FailureKind.API_FAILED, "the server kept answering 503"),
        "B": ThemeFailure(FailureKind.API_FAILED, "the server kept answering 503"),
        "C": ThemeFailure(FailureKind.UNEMBEDDABLE_TEXT, "refused"),
        "D": ThemeFailure(FailureKind.DROPPED_BY_REBUILD, "embedding-like text, other kind"),
        "E": ThemeFailure(FailureKind.NO_CANDIDATES, "embedding: not either"),
    }
    with caplog.at_level(logging.WARNING, logger="asyncpipe"):
        _warn_embedding_failures(failures, Workspace(tmp_path, Params()))

    (record,) = caplog.records
    assert record.getMessage().startswith(
        "3 themes could not be embedded (2 of them: the server kept answering 503)"
    )


def test_no_embedding_failure_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dropped = {"D": ThemeFailure(FailureKind.DROPPED_BY_REBUILD, "dropped")}
    with caplog.at_level(logging.WARNING, logger="asyncpipe"):
        _warn_embedding_failures(dropped, Workspace(tmp_path, Params()))
    assert caplog.records == []


def _made_and_pipeline() -> tuple[Any, Any]:
    made = SimpleNamespace(
        assembly=SimpleNamespace(puzzles=(puzzle(),)), scores=[score()], partial=True
    )
    return made, SimpleNamespace(params=Params(), created_at=None)


PROVIDER = {"name": "glove", "model": "glove-6B-50d", "dimension": 50}


def test_the_apps_document_names_the_set_and_marks_a_partial_batch() -> None:
    made, pipeline = _made_and_pipeline()

    document = _puzzle_sets(pipeline, made, PROVIDER)

    assert document["setIndex"]["asyncpipe"]["metadata"]["partial"] is True
    assert list(document["puzzleSets"]["asyncpipe"]["4x4"]) == ["asyncpipe_1"]


def test_a_document_that_breaks_the_apps_rules_is_a_bug_and_is_not_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, pipeline = _made_and_pipeline()
    monkeypatch.setattr(
        "asyncpipe.run.pipeline.validate_puzzle_sets", lambda document: ["row 1 is a category"]
    )

    with pytest.raises(RuntimeError, match="breaks the app's rules: row 1 is a category"):
        _puzzle_sets(pipeline, made, PROVIDER)
