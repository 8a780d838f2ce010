"""asyncpipe.embeddings.providers.gemini_errors: Google's error answers mapped to asyncpipe's errors.

The bodies are Google's shape, as the REST transport reads them (`error_for_status`)
and as the SDK hands them over (`error_from_parts`, with `APIError.details`, the
whole decoded body). The per-day quota violation is the one 429 that is not retried.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from asyncpipe.embeddings.providers.gemini_errors import (
    daily_quota_violated,
    error_for_status,
    error_from_parts,
)
from asyncpipe.errors import (
    DailyQuotaSpent,
    EmbeddingStopped,
    FatalEmbeddingError,
    RetryableEmbeddingError,
)

PER_DAY = "EmbedContentRequestsPerDayPerProjectPerModel-FreeTier"
PER_MINUTE = "EmbedContentRequestsPerMinutePerProjectPerModel-FreeTier"


def quota_body(*quota_ids: str, retry_delay: str | None = "59s") -> dict[str, Any]:
    """A 429 as Google sends it: a Help link, a QuotaFailure, and often a RetryInfo."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": "..."}],
        },
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/embed_content_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"model": "gemini-embedding-001", "location": "global"},
                    "quotaValue": "1000",
                }
                for quota_id in quota_ids
            ],
        },
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": details,
        }
    }


def rest(body: dict[str, Any], status: int = 429) -> Any:
    return error_for_status(status, json.dumps(body).encode(), {"retry-after": "59"})


def sdk(body: dict[str, Any], status: int = 429) -> Any:
    # google.genai.errors.APIError: `details` is the decoded body, `message` its message.
    return error_from_parts(status, body, {"retry-after": "59"}, body["error"]["message"])


MAPPINGS = [rest, sdk]


@pytest.mark.parametrize("mapped", MAPPINGS, ids=["rest", "sdk"])
def test_a_per_day_quota_violation_is_a_spent_day_not_a_retry(mapped: Any) -> None:
    error = mapped(quota_body(PER_DAY))

    assert isinstance(error, DailyQuotaSpent)
    assert isinstance(error, EmbeddingStopped)  # the run winds down as after a signal
    assert not isinstance(error, RetryableEmbeddingError)  # the 59 s RetryInfo is not obeyed
    assert error.status == 429
    assert PER_DAY in str(error)
    assert "429 RESOURCE_EXHAUSTED" in str(error)


@pytest.mark.parametrize("mapped", MAPPINGS, ids=["rest", "sdk"])
def test_a_message_over_several_lines_becomes_one_line(mapped: Any) -> None:
    body = quota_body(PER_DAY)
    body["error"]["message"] = "You exceeded your current quota.\n* Quota exceeded for metric: x\n"

    error = mapped(body)

    assert "\n" not in str(error)
    assert "You exceeded your current quota. * Quota exceeded for metric: x" in str(error)


@pytest.mark.parametrize("mapped", MAPPINGS, ids=["rest", "sdk"])
def test_a_per_minute_quota_violation_stays_retryable_with_its_delay(mapped: Any) -> None:
    error = mapped(quota_body(PER_MINUTE, retry_delay="12s"))

    assert isinstance(error, RetryableEmbeddingError)
    assert error.throttled and error.retry_after == 12.0


@pytest.mark.parametrize("mapped", MAPPINGS, ids=["rest", "sdk"])
def test_a_spent_day_wins_over_a_spent_minute_in_the_same_answer(mapped: Any) -> None:
    assert isinstance(mapped(quota_body(PER_MINUTE, PER_DAY)), DailyQuotaSpent)


@pytest.mark.parametrize("mapped", MAPPINGS, ids=["rest", "sdk"])
def test_a_per_day_violation_without_retry_info_is_a_spent_day_too(mapped: Any) -> None:
    assert isinstance(mapped(quota_body(PER_DAY, retry_delay=None)), DailyQuotaSpent)


def test_a_per_day_quota_id_in_another_status_keeps_that_status_meaning() -> None:
    body = quota_body(PER_DAY)
    assert isinstance(rest(body, status=403), FatalEmbeddingError)
    assert type(rest(body, status=503)) is RetryableEmbeddingError


def test_the_detail_may_come_with_or_without_its_error_wrapper() -> None:
    body = quota_body(PER_DAY)
    assert daily_quota_violated(body) == PER_DAY
    assert daily_quota_violated(body["error"]) == PER_DAY
    assert daily_quota_violated(quota_body(PER_MINUTE)) is None
    assert daily_quota_violated(quota_body("GenerateRequestsPerDayPerProjectPerModel")) == (
        "GenerateRequestsPerDayPerProjectPerModel"
    )


@pytest.mark.parametrize(
    "details",
    [
        None,
        "not a dict",
        {"error": {"details": "not a list"}},
        {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}]}},
        {
            "error": {
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": "x"}
                ]
            }
        },
        {
            "error": {
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": ["x", {"quotaId": 7}, {"quotaMetric": "PerDay"}],
                    }
                ]
            }
        },
    ],
)
def test_malformed_details_are_a_plain_retryable_429(details: Any) -> None:
    assert daily_quota_violated(details) is None
    error = error_from_parts(429, details, {}, "quota")
    assert type(error) is RetryableEmbeddingError


def test_a_429_body_that_is_not_json_is_a_plain_retryable_429() -> None:
    error = error_for_status(429, b"<html>Too Many Requests</html>", {"retry-after": "3"})
    assert type(error) is RetryableEmbeddingError and error.retry_after == 3.0
