"""asyncpipe.embeddings.daily_budget: requests per Pacific-time day, counted in a real file.

The clock is a `Clock` the tests move by hand, in UTC, so they cross midnight
Pacific time, and the two days a year the clocks change, at chosen instants.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from asyncpipe.embeddings.daily_budget import (
    BUDGET_FILE,
    PACIFIC,
    DailyBudget,
    next_reset,
    pacific_day,
)
from asyncpipe.errors import DailyQuotaSpent, InputError

#: 2025-06-01 12:00 PDT (UTC-7).
NOON_JUNE_1 = datetime(2025, 6, 1, 19, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def recorded(path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return document


def take(budget: DailyBudget, times: int) -> None:
    for _ in range(times):
        budget.take()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / BUDGET_FILE


# --- the Pacific-time day -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2025, 6, 1, 6, 59, 59, tzinfo=UTC), date(2025, 5, 31)),  # 23:59:59 PDT
        (datetime(2025, 6, 1, 7, 0, tzinfo=UTC), date(2025, 6, 1)),  # midnight PDT
        (datetime(2025, 1, 15, 7, 59, 59, tzinfo=UTC), date(2025, 1, 14)),  # 23:59:59 PST
        (datetime(2025, 1, 15, 8, 0, tzinfo=UTC), date(2025, 1, 15)),  # midnight PST
    ],
)
def test_the_day_is_the_pacific_date_in_summer_and_in_winter(moment: datetime, day: date) -> None:
    assert pacific_day(moment) == day


def test_the_day_the_clocks_go_forward_has_23_hours() -> None:
    # 2025-03-09: PST until 02:00, PDT after. A fixed UTC-8 would end the day an hour late.
    start = next_reset(datetime(2025, 3, 8, 20, 0, tzinfo=UTC))
    end = next_reset(start)

    assert start == datetime(2025, 3, 9, 8, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 10, 7, 0, tzinfo=UTC)
    # Elapsed time, not wall time: datetimes of one tzinfo subtract as wall clocks.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    assert pacific_day(end - timedelta(seconds=1)) == date(2025, 3, 9)
    assert pacific_day(end) == date(2025, 3, 10)


def test_the_day_the_clocks_go_back_has_25_hours() -> None:
    start = next_reset(datetime(2025, 11, 1, 20, 0, tzinfo=UTC))
    end = next_reset(start)

    assert (start, end) == (
        datetime(2025, 11, 2, 7, 0, tzinfo=UTC),
        datetime(2025, 11, 3, 8, 0, tzinfo=UTC),
    )
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=25)


def test_the_next_reset_is_midnight_pacific_whatever_zone_the_moment_is_given_in() -> None:
    tokyo = NOON_JUNE_1.astimezone(ZoneInfo("Asia/Tokyo"))

    assert next_reset(tokyo) == next_reset(NOON_JUNE_1)
    assert next_reset(NOON_JUNE_1).astimezone(PACIFIC).isoformat() == "2025-06-02T00:00:00-07:00"


# --- counting -------------------------------------------------------------------------------


def test_the_budget_allows_requests_per_day_and_refuses_the_next(path: Path) -> None:
    budget = DailyBudget(path, 5, Clock(NOON_JUNE_1))

    take(budget, 5)
    with pytest.raises(DailyQuotaSpent) as spent:
        budget.take()

    message = str(spent.value)
    assert "5 requests sent on 2025-06-01 (Pacific time)" in message
    assert "gemini.requests_per_day is 5" in message
    assert str(path) in message
    assert "\n" not in message
    assert budget.statistics().requests == 5
    assert recorded(path) == {"day": "2025-06-01", "time_zone": PACIFIC.key, "requests": 5}


def test_the_file_always_counts_at_least_the_requests_taken(path: Path) -> None:
    # A crash may come after any take: the file must already count it.
    budget = DailyBudget(path, 1000, Clock(NOON_JUNE_1))

    counted = []
    for taken in range(1, 41):
        budget.take()
        counted.append(recorded(path)["requests"])
        assert counted[-1] >= taken

    # Written ahead a hundredth of the budget at a time, not once per request.
    assert sorted(set(counted)) == [10, 20, 30, 40]


def test_close_writes_the_exact_count(path: Path) -> None:
    budget = DailyBudget(path, 1000, Clock(NOON_JUNE_1))
    take(budget, 13)
    assert recorded(path)["requests"] == 20

    budget.close()

    assert recorded(path)["requests"] == 13


def test_a_budget_reopened_the_same_day_goes_on_counting(path: Path) -> None:
    clock = Clock(NOON_JUNE_1)
    first = DailyBudget(path, 10, clock)
    take(first, 7)
    first.close()

    clock.now += timedelta(hours=3)
    second = DailyBudget(path, 10, clock)
    take(second, 3)

    with pytest.raises(DailyQuotaSpent):
        second.take()
    assert second.statistics().requests == 10


def test_a_crash_leaves_the_count_written_ahead_and_the_next_run_trusts_it(path: Path) -> None:
    clock = Clock(NOON_JUNE_1)
    crashed = DailyBudget(path, 200, clock)
    take(crashed, 3)  # no close: the file says 4 (written ahead by 2)

    again = DailyBudget(path, 200, clock)

    assert again.statistics().requests == 4
    assert again.statistics().requests >= 3


def test_the_count_starts_from_zero_at_midnight_pacific(path: Path) -> None:
    clock = Clock(datetime(2025, 6, 2, 6, 59, 0, tzinfo=UTC))  # 23:59 PDT on June 1
    budget = DailyBudget(path, 3, clock)
    take(budget, 3)
    with pytest.raises(DailyQuotaSpent):
        budget.take()

    clock.now = datetime(2025, 6, 2, 7, 0, 0, tzinfo=UTC)  # midnight PDT: June 2
    take(budget, 3)

    assert budget.statistics().day == date(2025, 6, 2)
    assert recorded(path)["day"] == "2025-06-02"
    with pytest.raises(DailyQuotaSpent):
        budget.take()


def test_on_the_day_the_clocks_go_forward_the_count_resets_at_0700_utc_not_0800(
    path: Path,
) -> None:
    clock = Clock(datetime(2025, 3, 10, 6, 59, 59, tzinfo=UTC))  # 23:59:59 PDT, March 9
    budget = DailyBudget(path, 2, clock)
    take(budget, 2)
    assert budget.statistics().day == date(2025, 3, 9)

    clock.now = datetime(2025, 3, 10, 7, 0, 0, tzinfo=UTC)

    take(budget, 2)  # a fresh day: a fixed UTC-8 offset would still say March 9
    assert budget.statistics().day == date(2025, 3, 10)


def test_a_file_of_another_day_counts_nothing(path: Path) -> None:
    clock = Clock(NOON_JUNE_1)
    spent = DailyBudget(path, 4, clock)
    take(spent, 4)
    spent.close()
    # What a person does to let a run go on: move the file's day back.
    document = recorded(path)
    document["day"] = "2025-05-31"
    path.write_text(json.dumps(document), encoding="utf-8")

    budget = DailyBudget(path, 4, clock)
    take(budget, 4)

    assert recorded(path) == {"day": "2025-06-01", "time_zone": PACIFIC.key, "requests": 4}


def test_spend_rest_counts_the_day_as_spent_for_every_later_run(path: Path) -> None:
    clock = Clock(NOON_JUNE_1)
    budget = DailyBudget(path, 100, clock)
    take(budget, 2)

    budget.spend_rest()  # the API answered with a per-day quota violation
    budget.close()

    assert recorded(path)["requests"] == 100
    with pytest.raises(DailyQuotaSpent):
        DailyBudget(path, 100, clock).take()
    clock.now += timedelta(days=1)
    DailyBudget(path, 100, clock).take()


def test_a_budget_that_sent_nothing_writes_no_file(path: Path) -> None:
    DailyBudget(path, 10, Clock(NOON_JUNE_1)).close()

    assert not path.exists()


def test_concurrent_requests_of_one_loop_never_overspend(path: Path) -> None:
    budget = DailyBudget(path, 20, Clock(NOON_JUNE_1))

    async def request() -> bool:
        await asyncio.sleep(0)
        try:
            budget.take()
        except DailyQuotaSpent:
            return False
        await asyncio.sleep(0)
        return True

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(request() for _ in range(100))))

    assert sum(asyncio.run(main())) == 20
    assert recorded(path)["requests"] == 20


# --- a file asyncpipe did not write -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "Expecting value"),
        (b"{not json", "Expecting property name"),
        (b'{"day": "2025-06-01"}', "no 'requests' key"),
        (b'{"requests": 3}', "no 'day' key"),
        (b'{"day": "yesterday", "requests": 3}', "Invalid isoformat"),
        (b'{"day": "2025-06-01", "requests": -1}', "not a count"),
        (b'{"day": "2025-06-01", "requests": true}', "not a count"),
        (b'{"day": "2025-06-01", "requests": 2.5}', "not a count"),
        (b"[1, 2]", "list indices"),
        (b"\xff\xfe", "utf-8"),
    ],
)
def test_a_file_asyncpipe_did_not_write_is_refused_with_one_line(
    path: Path, content: bytes, reason: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with pytest.raises(InputError) as refused:
        DailyBudget(path, 10, Clock(NOON_JUNE_1))

    message = str(refused.value)
    assert message.startswith(f"{path}: not a daily request count asyncpipe wrote (")
    assert reason in message
    assert "delete it" in message
    assert "\n" not in message
    assert path.read_bytes() == content  # left as it was, for the person to look at
