"""Theme failures: the kind decides, the reason is only shown, and both survive JSON."""

from __future__ import annotations

import pytest

from asyncpipe.puzzle.failures import FailureKind, ThemeFailure, failures_json


def test_a_failure_goes_to_json_and_back_unchanged() -> None:
    for kind in FailureKind:
        failure = ThemeFailure(kind, f"why {kind.name}")
        assert ThemeFailure.from_json(failure.to_json()) == failure


def test_the_metadata_form_gives_kind_and_reason_in_theme_order() -> None:
    failures = {
        "Xyzzy": ThemeFailure(FailureKind.API_FAILED, "embedding failed: 503"),
        "Archery": ThemeFailure(FailureKind.DROPPED_BY_REBUILD, "dropped to rebuild ..."),
    }
    assert failures_json(failures) == {
        "Xyzzy": {"kind": "api_failed", "reason": "embedding failed: 503"},
        "Archery": {"kind": "dropped_by_rebuild", "reason": "dropped to rebuild ..."},
    }


def test_only_an_api_failure_is_worth_trying_again() -> None:
    assert [kind for kind in FailureKind if kind.retryable] == [FailureKind.API_FAILED]


def test_the_embedding_kinds_are_the_api_failing_and_a_refused_text() -> None:
    assert {kind for kind in FailureKind if kind.embedding} == {
        FailureKind.API_FAILED,
        FailureKind.UNEMBEDDABLE_TEXT,
    }


@pytest.mark.parametrize(
    "document",
    [
        "embedding failed",
        {"kind": "lost", "reason": "?"},
        {"kind": "api_failed"},
        {"kind": "api_failed", "reason": 3},
    ],
)
def test_anything_but_a_known_kind_with_a_text_reason_is_refused(document: object) -> None:
    with pytest.raises((TypeError, ValueError, KeyError)):
        ThemeFailure.from_json(document)
