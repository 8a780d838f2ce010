"""Embedding a run's texts as Gemini Batch API jobs, before its puzzles are made.

The Batch API embeds at half the online price, on a quota of its own, and takes
minutes to hours. `gemini.mode: batch` (or `auto`, above `gemini.batch_min_texts`)
runs this first: every text the run may need (its themes, its spares and their
candidates) that the embedding store lacks goes into jobs; their vectors go into the
store under the usual key. The puzzles are then made exactly as a rerun would make
them, from the store, so they are byte for byte an online run's and send no request.

Jobs are durable. Each job's name and texts are written to the run's checkpoint
(`JobLedger`) right after the API creates it, before anything waits on it; a job
that ends is recorded too. `run --resume`, after a kill, a crash or a signal,
reattaches to the jobs still open by name: no job is created twice, and nothing is
paid twice. A signal while the run waits leaves the jobs running on Google's side
and ends the command at once (`JobsLeftRunning`, then the exit code of the signal); `asyncpipe
jobs` lists them and `asyncpipe jobs --cancel` cancels them.

What can go wrong, and what happens then:

- one line of a job gets an error: a permanent one (the text is refused) fails that
  text alone, and the themes needing it are replaced by spares, as online; a
  passing one (RESOURCE_EXHAUSTED, INTERNAL...) is handled like a failed job's texts;
- a job ends FAILED, EXPIRED or CANCELLED, or outlives `gemini.batch_timeout_hours`
  (then it is cancelled): it is reported by name and state, and its texts are
  resubmitted once in a new job, or left to the online requests of the run, as
  `gemini.batch_fallback` says. Texts whose second job fails too fail their themes
  as an API failure would (a later `--resume` tries them again);
- a recorded job the API answers 404 for (deleted, or lost) is handled like a failed
  job; so is one whose create is still refused, or whose results still cannot be read,
  after `gemini.max_retries` tries;
- a poll, a download or a create that the API answers with a passing error (a 429, a
  5xx, a dropped connection) is tried again at the next poll. A create is first looked
  up by its label, `job_label`: the failed try may have made the job before its answer
  was lost, and a job is never made twice. A fatal error (a bad key) stops the run.

Jobs are polled together, first after `gemini.batch_poll_seconds`, then 1.5 times
less often each time, up to once a minute. Times are read from `clock` (wall time:
a job's age must survive a restart) and waits go through `Shutdown.sleep`, on the
loop's clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from asyncpipe.embeddings.providers.gemini_batch import (
    NOT_FOUND,
    WITH_RESULTS,
    BatchApi,
    JobResults,
    JobStatus,
)
from asyncpipe.embeddings.store import EmbeddingStore
from asyncpipe.embeddings.tokens import request_tokens
from asyncpipe.errors import (
    EmbeddingError,
    FatalEmbeddingError,
    RetryableEmbeddingError,
    UnembeddableTextError,
)
from asyncpipe.run.interrupt import Shutdown
from asyncpipe.run.job_progress import JobProgress, elapsed
from asyncpipe.settings.sections import Gemini

log = logging.getLogger(__name__)

#: The longest wait between two polls, unless `gemini.batch_poll_seconds` is longer.
MAX_POLL_SECONDS = 60.0
_POLL_GROWTH = 1.5
CANCELLED = "JOB_STATE_CANCELLED"
_LABEL_PREFIX = "asyncpipe-"
#: How a succeeded job whose results could not be read, `max_retries` times over, ends.
UNREADABLE = "JOB_STATE_SUCCEEDED_UNREADABLE"
#: How far the API's clock and this machine's may disagree, in seconds, when jobs are
#: looked up by creation time; the label tells them apart anyway.
_CLOCK_SLACK = 3600.0


class JobsLeftRunning(Exception):
    """A signal came while the run waited on its jobs: they are left running.

    An ordinary exception inside the event loop (a KeyboardInterrupt raised in a task
    escapes the loop itself); the pipeline turns it into `Interrupted` once the loop
    is closed, for the command line's exit code, 130 or 143."""

    def __init__(self, signal_number: int, jobs: Sequence[str]) -> None:
        super().__init__(f"signal {signal_number} while waiting on {len(jobs)} batch jobs")
        self.signal_number = signal_number
        self.jobs = tuple(jobs)


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A job this run created: what the checkpoint records of it."""

    #: The API's name, "batches/ID".
    name: str
    #: Its texts, in request order (the engine's keys: `cache.normalise_text`).
    texts: tuple[str, ...]
    #: When it was created, in seconds since the epoch.
    created_at: float
    #: 1 for a first job, 2 for the resubmission of a failed one's texts.
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class JobEnd:
    """How a job of the run ended, as the checkpoint records it."""

    name: str
    state: str
    #: Texts the job refused for good, with the reason: a resumed run does not ask again.
    refused: Mapping[str, str] = field(default_factory=dict)


class JobLedger(Protocol):
    """Where the jobs are recorded as they are created and end (the run's checkpoint)."""

    async def batch_job_created(self, job: BatchJob) -> None: ...

    async def batch_job_ended(self, end: JobEnd) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchStatistics:
    """What the batch phase of a run did."""

    #: Texts the run may need that the store did not hold when it started.
    texts_missing: int
    jobs_created: int
    #: Jobs of an interrupted run that this one waited on instead of creating new ones.
    jobs_reattached: int
    #: Jobs that ended in another state than SUCCEEDED (timed out ones included).
    jobs_failed: int
    texts_submitted: int
    #: Their tokens by the documented estimate (`tokens.text_tokens`): what the jobs cost.
    estimated_tokens: int
    texts_stored: int
    #: Lines whose error refused their text for good.
    texts_refused: int
    #: Texts left to online requests (`gemini.batch_fallback: online`).
    texts_online: int
    #: Texts whose jobs failed, even resubmitted: their themes fail as an API failure.
    texts_failed: int
    seconds: float

    def to_json(self) -> dict[str, float | int]:
        return {
            "texts_missing": self.texts_missing,
            "jobs_created": self.jobs_created,
            "jobs_reattached": self.jobs_reattached,
            "jobs_failed": self.jobs_failed,
            "texts_submitted": self.texts_submitted,
            "estimated_tokens": self.estimated_tokens,
            "texts_stored": self.texts_stored,
            "texts_refused": self.texts_refused,
            "texts_online": self.texts_online,
            "texts_failed": self.texts_failed,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class BatchOutcome:
    """What the online part of the run must know: the texts it must not request."""

    #: Text -> the error its themes get instead of a request: `UnembeddableTextError`
    #: for a text refused, `RetryableEmbeddingError` for one whose jobs failed.
    refused: Mapping[str, EmbeddingError]
    statistics: BatchStatistics


def job_label(texts: Sequence[str], attempt: int) -> str:
    """A job's display name: asyncpipe, a digest of its texts, its attempt."""
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    return f"{_LABEL_PREFIX}{digest}-{attempt}"


def split_jobs(
    texts: Sequence[str], max_texts: int, inline_bytes: int, size_of: Callable[[str], int]
) -> list[tuple[list[str], bool]]:
    """`texts` cut into jobs of at most `max_texts`, each with whether it goes inline
    (its requests take at most `inline_bytes`) or as an uploaded file."""
    jobs = []
    for start in range(0, len(texts), max_texts):
        chunk = list(texts[start : start + max_texts])
        jobs.append((chunk, sum(map(size_of, chunk)) <= inline_bytes))
    return jobs


class BatchEmbedding:
    """The batch phase of one run: create or reattach jobs, wait, store what they return."""

    def __init__(
        self,
        api: BatchApi,
        store: EmbeddingStore,
        ledger: JobLedger,
        settings: Gemini,
        shutdown: Shutdown,
        progress: JobProgress,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._shutdown = shutdown
        self._progress = progress
        self._clock = clock
        self._open: dict[str, BatchJob] = {}
        self._refused: dict[str, EmbeddingError] = {}
        self._created = self._reattached = self._failed_jobs = 0
        self._submitted = self._stored = self._online = self._tokens = 0
        self._since: float | None = None
        self._known: set[str] = set()
        self._orphans: dict[str, tuple[str, float]] | None = None
        self._unreadable: dict[str, int] = {}

    async def run(
        self,
        texts: Iterable[str],
        recorded: Sequence[BatchJob] = (),
        ended: Mapping[str, JobEnd] | None = None,
        resumed_since: float | None = None,
    ) -> BatchOutcome | None:
        """Embed what the store lacks of `texts` (distinct keys) in jobs, and wait for them.

        `recorded`, `ended`: the jobs an interrupted run created, and how those that
        ended did. Those still open are waited on whatever the mode; in online mode no
        job is created, and what they do not cover is left to the online requests.
        `resumed_since`: when that run started (seconds since the epoch); a
        job it created but had no time to record (a kill between the API's answer and
        the checkpoint's write) is found by its display name and adopted, not created
        again. Returns None when `gemini.mode` is auto and too few texts are missing
        for a job, or online with no job to wait on: the run then goes online.
        """
        started = time.perf_counter()
        ended = ended or {}
        self._since = resumed_since
        self._known = {job.name for job in recorded}
        wanted = list(dict.fromkeys(texts))
        missing = await self._store.absent(wanted)
        absent = set(missing)
        for end in ended.values():
            for text, reason in end.refused.items():
                if text in absent:
                    self._refused[text] = UnembeddableTextError(reason)
        for job in recorded:
            if job.name not in ended:
                self._open[job.name] = job
        waiting = {text for job in self._open.values() for text in job.texts}
        todo = [text for text in missing if text not in waiting and text not in self._refused]
        mode = self._settings.mode
        if mode == "online" and not self._open:
            return None
        if mode == "auto" and not self._open and len(todo) < self._settings.batch_min_texts:
            log.info(
                "Embedding online: %d texts are not stored, below gemini.batch_min_texts %d",
                len(todo),
                self._settings.batch_min_texts,
            )
            return None
        self._reattached = len(self._open)
        if self._open:
            log.info(
                "Reattaching to %d batch jobs of the interrupted run: %s",
                len(self._open),
                ", ".join(self._open),
            )
        log.info(
            "Batch mode: %d of the run's %d texts are not stored; %d are not in a job yet",
            len(missing),
            len(wanted),
            len(todo),
        )
        if mode == "online":
            # The jobs of a batch run resumed online are paid for: they are waited on, and
            # what they do not cover is left to the online requests.
            log.info("gemini.mode is online: %d texts are left to online requests", len(todo))
            self._online += len(todo)
        else:
            await self._submit(todo, attempt=1)
        await self._wait()
        return BatchOutcome(
            dict(self._refused),
            BatchStatistics(
                texts_missing=len(missing),
                jobs_created=self._created,
                jobs_reattached=self._reattached,
                jobs_failed=self._failed_jobs,
                texts_submitted=self._submitted,
                estimated_tokens=self._tokens,
                texts_stored=self._stored,
                texts_refused=sum(
                    isinstance(error, UnembeddableTextError) for error in self._refused.values()
                ),
                texts_online=self._online,
                texts_failed=sum(
                    isinstance(error, RetryableEmbeddingError) for error in self._refused.values()
                ),
                seconds=time.perf_counter() - started,
            ),
        )

    async def _submit(self, texts: Sequence[str], attempt: int) -> None:
        """Create the jobs for `texts`, each recorded before the next is created."""
        settings = self._settings
        inline_bytes = int(settings.batch_inline_mb * 2**20)
        for chunk, inline in split_jobs(
            texts,
            min(settings.batch_job_texts, self._api.texts_per_job),
            inline_bytes,
            self._api.text_bytes,
        ):
            self._stop_if_signalled()
            made = await self._created_job(chunk, inline, attempt)
            if made is None:
                continue
            name, created_at, adopted = made
            job = BatchJob(name, tuple(chunk), created_at, attempt)
            await self._ledger.batch_job_created(job)
            self._open[name] = job
            if adopted:
                self._reattached += 1
                continue
            self._created += 1
            self._submitted += len(chunk)
            self._tokens += request_tokens(chunk)
            log.info(
                "Created batch job %s: %d texts, %s%s",
                name,
                len(chunk),
                "inline" if inline else "as a JSONL file",
                " (a resubmission)" if attempt > 1 else "",
            )

    async def _created_job(
        self, texts: list[str], inline: bool, attempt: int
    ) -> tuple[str, float, bool] | None:
        """(name, creation time, adopted) of the job for `texts`: a new one, or one the
        API already holds under its label (created before an interruption, or by a try
        whose answer was lost). None when the API would not create it, `max_retries`
        times over: its texts then go where a failed job's go."""
        label = job_label(texts, attempt)
        adopted = (await self._unrecorded()).pop(label, None)
        if adopted is not None:
            log.info(
                "Adopting batch job %s: an interrupted run created it, unrecorded here",
                adopted[0],
            )
            return adopted[0], adopted[1], True
        started = self._clock()
        delay = self._settings.batch_poll_seconds
        for tries in range(self._settings.max_retries + 1):
            try:
                return await self._api.create(texts, label, inline), self._clock(), False
            except RetryableEmbeddingError as error:
                failure = error
                log.warning("Creating a batch job failed (%s)", error)
            if tries == self._settings.max_retries:
                break
            await self._sleep(delay)
            delay = self._next_delay(delay)
            # The failed try may have created the job before its answer was lost.
            found = (await self._listed(started - _CLOCK_SLACK)).get(label)
            if found is not None:
                log.info("Batch job %s was created by the try whose answer was lost", found[0])
                return found[0], found[1], False
        log.warning(
            "The Batch API would not create a job for %d texts (%s); they %s",
            len(texts),
            failure,
            "go online" if self._goes_online() else "fail their themes",
        )
        self._unplaced(
            dict.fromkeys(texts, f"the Batch API would not create their job ({failure})")
        )
        return None

    def _unplaced(self, reasons: Mapping[str, str]) -> None:
        """Texts no job will embed, with why: left to the online requests, or failed."""
        if self._goes_online():
            self._online += len(reasons)
        else:
            for text, reason in reasons.items():
                self._refused[text] = RetryableEmbeddingError(reason)

    async def _unrecorded(self) -> dict[str, tuple[str, float]]:
        """Label -> (name, creation time) of the interrupted run's jobs its checkpoint does
        not name (read once, when resuming)."""
        if self._orphans is None:
            self._orphans = {}
            if self._since is not None:
                jobs = await self._listed(self._since - _CLOCK_SLACK)
                self._orphans = {
                    label: job for label, job in jobs.items() if job[0] not in self._known
                }
        return self._orphans

    async def _listed(self, since: float) -> dict[str, tuple[str, float]]:
        """The API's open or succeeded jobs of asyncpipe's created since `since`, by
        label; none when the API cannot list them (not every server can)."""
        try:
            return await self._api.open_jobs_since(since, _LABEL_PREFIX)
        except EmbeddingError as error:
            log.warning("Listing the batch jobs failed (%s): taking it that there are none", error)
            return {}

    async def _wait(self) -> None:
        delay = self._settings.batch_poll_seconds
        while self._open:
            await self._sleep(delay)
            delay = self._next_delay(delay)
            jobs = list(self._open.values())
            statuses = await asyncio.gather(*(self._poll(job) for job in jobs))
            now = self._clock()
            self._progress.update(
                {
                    job.name: (status.state, now - job.created_at)
                    for job, status in zip(jobs, statuses, strict=True)
                    if status is not None
                }
            )
            for job, status in zip(jobs, statuses, strict=True):
                if status is not None and status.ended:
                    await self._ended(job, status)
            if self._open.keys() - {job.name for job in jobs}:
                # A resubmission (made or adopted): polled as soon as a new job is.
                delay = self._settings.batch_poll_seconds

    async def _poll(self, job: BatchJob) -> JobStatus | None:
        """The job's status, or None if the poll failed for a passing reason. A job past
        its timeout is cancelled and so reported once the cancel is accepted; a job the
        API no longer knows (deleted, or a server that lost it) has ended."""
        hours = self._settings.batch_timeout_hours
        overdue = self._clock() - job.created_at > hours * 3600
        status: JobStatus | None = None
        try:
            status = await self._api.status(job.name)
        except RetryableEmbeddingError as error:
            log.warning("Polling batch job %s failed (%s); polling again", job.name, error)
        except FatalEmbeddingError as error:
            if error.status != 404:
                raise
            return JobStatus(job.name, NOT_FOUND, str(error))
        if (status is not None and status.ended) or not overdue:
            return status
        log.warning(
            "Batch job %s is still %s after gemini.batch_timeout_hours (%g h): cancelling it",
            job.name,
            status.state if status is not None else "unknown",
            hours,
        )
        try:
            await self._api.cancel(job.name)
        except RetryableEmbeddingError as error:
            # Not taken as ended: the job may still succeed, and its texts be paid twice.
            log.warning("Cancelling batch job %s failed (%s); trying again", job.name, error)
            return status
        return JobStatus(job.name, CANCELLED, f"ran past {hours:g} h")

    async def _ended(self, job: BatchJob, status: JobStatus) -> None:
        refused: dict[str, str] = {}
        again: list[str] = []
        line_errors: dict[str, str] = {}
        results: JobResults | None = None
        if status.state in WITH_RESULTS:
            try:
                results = await self._api.results(job.name, len(job.texts))
            except RetryableEmbeddingError as error:
                failures = self._unreadable[job.name] = self._unreadable.get(job.name, 0) + 1
                if failures <= self._settings.max_retries:
                    log.warning("Reading batch job %s failed (%s); trying again", job.name, error)
                    return
                # Results that cannot be read are no results: the job counts as failed.
                status = JobStatus(job.name, UNREADABLE, str(error))
        if results is not None:
            await self._store.put_many((job.texts[i], row) for i, row in results.vectors.items())
            self._stored += len(results.vectors)
            for index, line_error in sorted(results.errors.items()):
                text = job.texts[index]
                if line_error.permanent:
                    refused[text] = str(line_error)
                    self._refused[text] = UnembeddableTextError(str(line_error))
                else:
                    again.append(text)
                    line_errors[text] = str(line_error)
            if results.errors:
                log.warning(
                    "Batch job %s: %d of %d lines failed (%d for good, %d to try again)",
                    job.name,
                    len(results.errors),
                    len(job.texts),
                    len(refused),
                    len(again),
                )
        else:
            self._failed_jobs += 1
            again = list(job.texts)
            log.warning(
                "Batch job %s ended %s%s; its %d texts %s",
                job.name,
                status.state,
                f" ({status.message})" if status.message else "",
                len(job.texts),
                self._fallback_words(job),
            )
        await self._ledger.batch_job_ended(JobEnd(job.name, status.state, refused))
        del self._open[job.name]
        if again:
            await self._fall_back(job, status, again, line_errors)

    def _goes_online(self) -> bool:
        return self._settings.batch_fallback == "online" or self._settings.mode == "online"

    def _fallback_words(self, job: BatchJob) -> str:
        if self._goes_online():
            return "go online"
        return "are resubmitted" if job.attempt == 1 else "fail (already resubmitted once)"

    async def _fall_back(
        self,
        job: BatchJob,
        status: JobStatus,
        texts: list[str],
        line_errors: Mapping[str, str],
    ) -> None:
        """`texts` of `job` got no vector: `line_errors` says why for those whose line
        failed in a job that ended with results; the others' job did not."""
        if job.attempt == 1 and not self._goes_online():
            await self._submit(texts, attempt=2)
            return
        self._unplaced(
            {
                text: f"tried in two batch jobs, the last {job.name}: "
                + (line_errors.get(text) or f"its job ended {status.state}")
                for text in texts
            }
        )

    async def _sleep(self, seconds: float) -> None:
        if await self._shutdown.sleep(seconds):
            self._stop_if_signalled()

    def _stop_if_signalled(self) -> None:
        number = self._shutdown.signal_number
        if number is None:
            return
        if self._open:
            log.warning(
                "%s: leaving %d batch jobs running on Google's side (%s). "
                "`asyncpipe run --resume` waits for them again, creating none anew; "
                "`asyncpipe jobs --cancel` cancels them.",
                self._shutdown.signal_name,
                len(self._open),
                ", ".join(self._open),
            )
        raise JobsLeftRunning(number, list(self._open))

    def _next_delay(self, delay: float) -> float:
        longest = max(MAX_POLL_SECONDS, self._settings.batch_poll_seconds)
        return min(longest, delay * _POLL_GROWTH)


async def job_lines(
    api: BatchApi,
    jobs: Sequence[BatchJob],
    cancel: bool = False,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """One line per job, its state asked of the API: what `asyncpipe jobs` prints.

    `cancel`: the jobs that have not ended are cancelled, and said so. A job the API
    cannot tell about (deleted, or a passing error) is listed with the reason."""
    lines = []
    for job in jobs:
        try:
            status = await api.status(job.name)
            state = status.state
            if cancel and not status.ended:
                await api.cancel(job.name)
                state += " -> cancel requested"
        except (RetryableEmbeddingError, FatalEmbeddingError) as error:
            state = f"unknown ({error})"
        created = datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        age = elapsed(clock() - job.created_at)
        again = ", a resubmission" if job.attempt > 1 else ""
        lines.append(
            f"{job.name}  {state}  {len(job.texts):,} texts{again}  created {created} ({age} ago)"
        )
    return lines
