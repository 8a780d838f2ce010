"""JobProgress: a log line per state a job is seen in, a summary at most every interval."""

from __future__ import annotations

import io
import logging

import pytest

from asyncpipe.run.job_progress import JobProgress, elapsed


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (45.9, "45s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_elapsed_time_reads_as_a_person_writes_it(seconds: float, shown: str) -> None:
    assert elapsed(seconds) == shown


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_state_changes_are_logged_once_and_the_summary_keeps_its_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO), JobProgress(60.0, bar=False, clock=clock) as progress:
        progress.update(
            {"batches/a": ("JOB_STATE_PENDING", 1), "batches/b": ("JOB_STATE_PENDING", 1)}
        )
        clock.now = 30
        progress.update(
            {"batches/a": ("JOB_STATE_RUNNING", 31), "batches/b": ("JOB_STATE_PENDING", 31)}
        )
        clock.now = 61
        progress.update(
            {"batches/a": ("JOB_STATE_SUCCEEDED", 62), "batches/b": ("JOB_STATE_RUNNING", 62)}
        )

    assert caplog.messages == [
        "Batch job batches/a: JOB_STATE_PENDING after 1s",
        "Batch job batches/b: JOB_STATE_PENDING after 1s",
        "Batch jobs: 0 of 2 ended (2 JOB_STATE_PENDING) after 1s",
        "Batch job batches/a: JOB_STATE_RUNNING after 31s",
        "Batch job batches/a: JOB_STATE_SUCCEEDED after 1m02s",
        "Batch job batches/b: JOB_STATE_RUNNING after 1m02s",
        "Batch jobs: 1 of 2 ended (1 JOB_STATE_RUNNING) after 1m02s",
    ]


def test_on_a_terminal_a_bar_counts_the_jobs_ended() -> None:
    stream = io.StringIO()
    with JobProgress(60.0, stream=stream, bar=True) as progress:
        progress.update(
            {"batches/a": ("JOB_STATE_SUCCEEDED", 5), "batches/b": ("JOB_STATE_RUNNING", 5)}
        )
        shown = stream.getvalue()
    assert "1/2" in shown and "running=1" in shown
