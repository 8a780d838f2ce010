"""The day's request budget, `gemini.requests_per_day`, counted in a file by Pacific-time day.

Google's daily quotas reset at midnight Pacific time (America/Los_Angeles, PST or
PDT), so that is the day counted here, whatever the machine's own time zone. The
count lives in `daily_requests.json` in the store's folder (`paths.cache`), so the
runs of one day share one budget and `run --resume` the next day starts afresh:

    {"day": "2025-06-01", "time_zone": "America/Los_Angeles", "requests": 412}

Every request the engine sends takes one (`take`), retries included, as Google
counts them. A take checks and counts in one synchronous step, with no await in
between, so the concurrent requests of the one event loop can never overspend it.
Two processes sharing a cache folder would each count alone: the workdir's run
lock keeps one run per workdir, and one cache folder for several workdirs is not
supported with a budget.

The file never counts fewer requests than were sent: a request goes out only once
the file counts it. Writing it for every request would mean an fsync per request,
so it is written ahead, a block at a time (a hundredth of the budget, at least 1):
the file says "up to N" and N moves on by a block when the count reaches it. A
crash leaves at most one block counted that was never sent; `close` writes the
exact count. Every write is atomic (`asyncpipe.io.files.atomic_writer`), so a crash
mid-write leaves the previous count.

A file asyncpipe did not write (not JSON, keys missing, a negative count) is
refused with one line (`InputError`, exit code 2) saying what to do, never quietly
started afresh: the budget may be a cost cap, and a count reset by accident would
let a day spend it twice. A file of any other day than today counts nothing.

The clock is injectable (`now`, an aware datetime), so tests cross midnight and the
days the clocks change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from asyncpipe.errors import DailyQuotaSpent, InputError
from asyncpipe.io.files import atomic_writer, read_input

#: The time zone of Google's daily quota resets.
PACIFIC = ZoneInfo("America/Los_Angeles")
BUDGET_FILE = "daily_requests.json"
#: The file is written ahead by this share of the budget (at least one request).
_BLOCK_SHARE = 0.01


def pacific_day(moment: datetime) -> date:
    """The Pacific-time date of an aware `moment`: the day whose quota it spends."""
    return moment.astimezone(PACIFIC).date()


def next_reset(moment: datetime) -> datetime:
    """The first midnight Pacific time after `moment`, when the daily quotas reset."""
    tomorrow = pacific_day(moment) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of a `DailyBudget`, from `DailyBudget.statistics()`."""

    #: The Pacific-time day counted.
    day: date
    #: Requests counted that day, this run's and earlier runs'.
    requests: int
    #: `gemini.requests_per_day`.
    limit: int


class DailyBudget:
    """At most `requests_per_day` requests per Pacific-time day, counted in `path`."""

    def __init__(
        self, path: Path, requests_per_day: int, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self._path = path
        self._limit = requests_per_day
        self._now = now
        self._block = max(1, int(requests_per_day * _BLOCK_SHARE))
        self._day = pacific_day(now())
        recorded = _read(path)
        # What the file already counts for today: every one of them may have been sent.
        self._used = recorded[1] if recorded is not None and recorded[0] == self._day else 0
        self._written: int | None = self._used if recorded is not None else None

    @property
    def path(self) -> Path:
        return self._path

    def take(self) -> None:
        """Count one request about to be sent; `DailyQuotaSpent` if today's are spent."""
        self._roll_over()
        if self._used >= self._limit:
            raise DailyQuotaSpent(
                f"the daily request budget is spent: {self._used} requests sent on "
                f"{self._day.isoformat()} (Pacific time), gemini.requests_per_day is "
                f"{self._limit} (counted in {self._path})"
            )
        self._used += 1
        if self._written is None or self._used > self._written:
            self._write(min(self._limit, self._used + self._block - 1))

    def spend_rest(self) -> None:
        """The API said the day's quota is spent: count the rest of today's budget as used,
        so that no run sends another request before midnight Pacific time."""
        self._roll_over()
        self._used = self._limit
        self._write(self._limit)

    def close(self) -> None:
        """Write the exact count, if the file says more (or nothing)."""
        if self._used != self._written and (self._used or self._written is not None):
            self._write(self._used)

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(self._day, self._used, self._limit)

    def _roll_over(self) -> None:
        today = pacific_day(self._now())
        if today != self._day:
            self._day, self._used, self._written = today, 0, None

    def _write(self, requests: int) -> None:
        document = {
            "day": self._day.isoformat(),
            "time_zone": PACIFIC.key,
            "requests": requests,
        }
        with atomic_writer(self._path) as handle:
            handle.write(json.dumps(document) + "\n")
        self._written = requests


def _read(path: Path) -> tuple[date, int] | None:
    """The (day, requests) the file records; None when there is no file."""
    data = read_input(
        path,
        missing=None,
        unreadable=lambda error: (
            f"{path}: cannot read the daily request count ({error.strerror or error})"
        ),
    )
    if data is None:
        return None
    try:
        document: Any = json.loads(data.decode("utf-8"))
        day = date.fromisoformat(document["day"])
        requests = document["requests"]
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
            raise ValueError(f"requests is {requests!r}, not a count")
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
        reason = f"no {error} key" if isinstance(error, KeyError) else str(error)
        raise InputError(
            f"{path}: not a daily request count asyncpipe wrote ({reason}); delete it to "
            f"count today's requests from 0 (gemini.requests_per_day)"
        ) from None
    return day, requests
