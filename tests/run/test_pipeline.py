"""The pipeline's handling of failed themes: typed from the start, kinds decide."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.run.pipeline import _usable_themes, _warn_embedding_failures
from asyncpipe.settings.sections import Params, PuzzleGeneration
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.candidates import CandidateSearchResult, ThemeCandidates
from asyncpipe.stages.themes import ThemeSelection


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
