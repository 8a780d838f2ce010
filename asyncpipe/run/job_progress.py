"""Progress of a run's Batch API jobs: a log line when a job changes state, a bar on a terminal.

A job takes minutes to hours, so what a person wants to see is each job's state and
how long it has been going. Two fixed line forms, for people and log scrapers:

    Batch job batches/abc123: JOB_STATE_RUNNING after 3m05s
    Batch jobs: 2 of 3 ended (1 JOB_STATE_RUNNING) after 12m30s

The first comes whenever a job is seen in a new state, the second at most every
`interval` seconds while jobs are open. When stderr is a terminal a live bar
(tqdm) also shows the jobs ended out of those created. The reporter only prints.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import IO, Any

from asyncpipe.embeddings.providers.gemini_batch import FINAL_STATES

log = logging.getLogger(__name__)


def elapsed(seconds: float) -> str:
    """3m05s, 1h02m, 45s."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class JobProgress:
    """`with JobProgress(interval) as progress: ... progress.update({name: (state, age)})`."""

    def __init__(
        self,
        interval: float,
        stream: IO[str] | None = None,
        bar: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._stream = stream if stream is not None else sys.stderr
        self._want_bar = bar if bar is not None else _is_terminal(self._stream)
        self._clock = clock
        self._bar: Any = None
        self._states: dict[str, str] = {}
        self._ages: dict[str, float] = {}
        self._last_summary: float | None = None

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def update(self, jobs: Mapping[str, tuple[str, float]]) -> None:
        """The jobs just polled: each one's state and age (seconds since its creation)."""
        for name, (state, age) in jobs.items():
            if self._states.get(name) != state:
                log.info("Batch job %s: %s after %s", name, state, elapsed(age))
            self._states[name] = state
            self._ages[name] = age
        now = self._clock()
        if self._last_summary is None or now - self._last_summary >= self._interval:
            self._last_summary = now
            log.info("%s", self.line())
        self._show_bar()

    def line(self) -> str:
        ended = sum(state in FINAL_STATES for state in self._states.values())
        open_states = Counter(s for s in self._states.values() if s not in FINAL_STATES)
        detail = ", ".join(f"{count} {state}" for state, count in sorted(open_states.items()))
        age = max(self._ages.values(), default=0.0)
        return (
            f"Batch jobs: {ended} of {len(self._states)} ended"
            f"{f' ({detail})' if detail else ''} after {elapsed(age)}"
        )

    def _show_bar(self) -> None:
        if not self._want_bar:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="job", file=self._stream, leave=False)
        ended = sum(state in FINAL_STATES for state in self._states.values())
        self._bar.total = len(self._states)
        self._bar.n = ended
        open_states = Counter(
            s.removeprefix("JOB_STATE_").lower()
            for s in self._states.values()
            if s not in FINAL_STATES
        )
        self._bar.set_postfix(
            age=elapsed(max(self._ages.values(), default=0.0)), **open_states, refresh=False
        )
        self._bar.refresh()


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
