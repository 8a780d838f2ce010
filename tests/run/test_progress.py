"""The progress line's fixed form, and the reporter that logs it at an interval and at the end."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import pytest

from asyncpipe.run.progress import ProgressReporter, progress_line

LINE = re.compile(
    r"^Progress: (\d+)/(\d+) \((\d+\.\d)%\) - (\d+) successful, (\d+) failed "
    r"\(rate: (\d+\.\d) tasks/sec\)$"
)


def progress_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncpipe.run.progress" and record.getMessage().startswith("Progress:")
    ]


def test_progress_line_has_the_exact_documented_form() -> None:
    line = progress_line(done=40, total=320, successful=35, failed=5, seconds=40 / 8.2)

    assert line == "Progress: 40/320 (12.5%) - 35 successful, 5 failed (rate: 8.2 tasks/sec)"


def test_progress_line_rounds_percent_and_rate_to_one_decimal() -> None:
    line = progress_line(done=1, total=3, successful=1, failed=0, seconds=3.0)

    assert line == "Progress: 1/3 (33.3%) - 1 successful, 0 failed (rate: 0.3 tasks/sec)"


def test_progress_line_of_nothing_to_do_in_no_time_is_complete_at_rate_zero() -> None:
    line = progress_line(done=0, total=0, successful=0, failed=0, seconds=0.0)

    assert line == "Progress: 0/0 (100.0%) - 0 successful, 0 failed (rate: 0.0 tasks/sec)"


@pytest.mark.asyncio
async def test_the_reporter_logs_a_line_at_each_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncpipe")

    async with ProgressReporter(10, interval=0.05, bar=False) as reporter:
        reporter.record(successful=True)
        reporter.record(successful=False)
        await asyncio.sleep(0.18)
        during = progress_messages(caplog)

    assert 2 <= len(during) <= 4
    for message in during:
        match = LINE.match(message)
        assert match is not None, message
        assert match.group(1, 2, 3, 4, 5) == ("2", "10", "20.0", "1", "1")


@pytest.mark.asyncio
async def test_the_reporter_logs_a_final_line_on_exit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncpipe")

    async with ProgressReporter(4, interval=60.0, bar=False) as reporter:
        for successful in (True, True, True, False):
            reporter.record(successful)

    messages = progress_messages(caplog)
    assert len(messages) == 1  # the interval never came round: only the final line
    assert messages[0].startswith("Progress: 4/4 (100.0%) - 3 successful, 1 failed (rate: ")
    assert LINE.match(messages[0])


@pytest.mark.asyncio
async def test_the_reporter_stops_logging_after_exit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncpipe")

    async with ProgressReporter(2, interval=0.02, bar=False):
        await asyncio.sleep(0.05)
    at_exit = len(progress_messages(caplog))
    await asyncio.sleep(0.1)

    assert len(progress_messages(caplog)) == at_exit


@pytest.mark.asyncio
async def test_the_reporter_logs_a_final_line_even_when_the_work_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asyncpipe")

    with pytest.raises(RuntimeError, match="the work failed"):
        async with ProgressReporter(3, interval=60.0, bar=False) as reporter:
            reporter.record(successful=True)
            raise RuntimeError("the work failed")

    (final,) = progress_messages(caplog)
    assert final.startswith("Progress: 1/3 (33.3%) - 1 successful, 0 failed")


@pytest.mark.asyncio
async def test_add_total_grows_the_total(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncpipe")

    async with ProgressReporter(4, interval=60.0, bar=False) as reporter:
        for _ in range(4):
            reporter.record(successful=True)
        reporter.add_total(2)  # two spares replace failed themes
        reporter.record(successful=True)
        assert reporter.done == 5
        assert reporter.line().startswith("Progress: 5/6 (83.3%) - 5 successful, 0 failed")

    assert progress_messages(caplog)[-1].startswith("Progress: 5/6 (83.3%)")


@pytest.mark.asyncio
async def test_with_bar_false_no_bar_is_drawn() -> None:
    stream = io.StringIO()

    async with ProgressReporter(5, interval=60.0, stream=stream, bar=False) as reporter:
        reporter.record(successful=True)
        reporter.add_total(1)

    assert stream.getvalue() == ""


@pytest.mark.asyncio
async def test_without_a_terminal_no_bar_is_drawn_by_default() -> None:
    stream = io.StringIO()  # not a tty, like CI logs and pipes

    async with ProgressReporter(5, interval=60.0, stream=stream) as reporter:
        reporter.record(successful=True)

    assert stream.getvalue() == ""


@pytest.mark.asyncio
async def test_with_bar_true_the_bar_is_drawn_on_the_stream() -> None:
    stream = io.StringIO()

    async with ProgressReporter(5, interval=60.0, stream=stream, bar=True) as reporter:
        reporter.record(successful=True)
        reporter.record(successful=False)
        reporter.add_total(3)

    drawn = stream.getvalue()
    assert "/8" in drawn
    assert "theme" in drawn


def test_the_reporter_counts_before_it_is_entered() -> None:
    reporter = ProgressReporter(3, bar=False)

    reporter.record(successful=False)

    assert reporter.done == 1
    assert reporter.line().startswith("Progress: 1/3 (33.3%) - 0 successful, 1 failed")
