"""How a Gemini failure becomes an asyncpipe error: fatal or retryable, with the server's delay.

429, 408 and 5xx answers are retryable, carrying the delay the server asked
for (RetryInfo's retryDelay, else Retry-After); 400, 401, 403, 404 and other
client errors are fatal, because retrying a bad key or a bad request only
burns quota and time. Both transports (REST and SDK) map through here.

One 429 is neither: a per-day quota violation, a `google.rpc.QuotaFailure` detail
whose violation names a daily quota (`"quotaId":
"EmbedContentRequestsPerDayPerProjectPerModel-FreeTier"`). It often carries a
RetryInfo of under a minute, but no request succeeds before midnight Pacific
time, so obeying it would only send a storm of 429s: it becomes `DailyQuotaSpent`,
which stops the run cleanly instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from asyncpipe.errors import (
    DailyQuotaSpent,
    EmbeddingError,
    FatalEmbeddingError,
    RetryableEmbeddingError,
)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)s\s*$")


def error_for_status(status: int, body: bytes, headers: Mapping[str, str]) -> EmbeddingError:
    """The asyncpipe error for a non-200 answer of the REST method."""
    try:
        details = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        details = None
    return error_from_parts(status, details, headers, None)


def error_from_parts(
    status: int, details: Any, headers: Mapping[str, str], message: str | None
) -> EmbeddingError:
    """The error for a status, the decoded error body (if any), headers and a message."""
    error = details.get("error", {}) if isinstance(details, dict) else {}
    error = error if isinstance(error, dict) else {}
    reason = error.get("status") or ""
    # Google's quota messages run over several lines ("...\n* Quota exceeded for metric:
    # ..."): asyncpipe shows an error as one line.
    text = " ".join(str(message or error.get("message") or "").split())
    described = f"Gemini API answered {status} {reason}: {text}".strip().rstrip(":")
    if status == 429 and (daily := daily_quota_violated(details)) is not None:
        return DailyQuotaSpent(f"{described} (quota {daily})", status=status)
    if status in RETRYABLE_STATUSES:
        return RetryableEmbeddingError(
            described, status=status, retry_after=retry_delay(details, headers)
        )
    return FatalEmbeddingError(described, status=status)


def retry_delay(details: Any, headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for: RetryInfo's retryDelay, else Retry-After (seconds)."""
    for detail in _error_details(details):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    header = headers.get("retry-after") if headers else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None  # an HTTP date: rare from Google; the backoff applies instead
    return None


def daily_quota_violated(details: Any) -> str | None:
    """The id of the per-day quota a 429's QuotaFailure detail names, if it names one.

    Google's quota ids spell out their period ("...PerMinute...", "...PerDay..."):
    the per-minute ones pass within the minute, the daily ones at midnight Pacific.
    """
    for detail in _error_details(details):
        if not str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            continue
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            quota = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota, str) and "perday" in quota.lower():
                return quota
    return None


def _error_details(details: Any) -> list[dict[str, Any]]:
    if not isinstance(details, dict):
        return []
    error = details.get("error", details)
    found = error.get("details", []) if isinstance(error, dict) else []
    return (
        [detail for detail in found if isinstance(detail, dict)] if isinstance(found, list) else []
    )
