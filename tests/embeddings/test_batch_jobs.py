"""BatchEmbedding: Batch API jobs created, recorded, followed, fallen back on and stored.

The real google-genai client (`gemini_batch.BatchApi`) runs the jobs against the local
test server (`tests.gemini_server`, whose jobs last `BatchConfig.delay` and end as it
is told); the store is a real SQLite file and the ledger records what the run's
checkpoint would. Polls are 20 ms apart and jobs last a fraction of a second, so the
waits are real but short. The vectors a job stores are compared byte for byte with
those the online provider gets from the same server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mmap
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asyncpipe.embeddings.batch_jobs import (
    BatchEmbedding,
    BatchJob,
    BatchOutcome,
    JobEnd,
    JobsLeftRunning,
    job_lines,
    split_jobs,
)
from asyncpipe.embeddings.cache import Namespace
from asyncpipe.embeddings.providers.decode import checked_vectors
from asyncpipe.embeddings.providers.gemini import GeminiProvider
from asyncpipe.embeddings.providers.gemini_batch import BatchApi, JobResults, LineError
from asyncpipe.embeddings.store import STORE_FILE, EmbeddingStore
from asyncpipe.errors import RetryableEmbeddingError, UnembeddableTextError
from asyncpipe.run.interrupt import Shutdown
from asyncpipe.run.job_progress import JobProgress
from asyncpipe.settings.sections import Gemini
from tests.gemini_server import (
    DEFAULT_API_KEY,
    BatchConfig,
    BatchState,
    GeminiTestServer,
    ServerConfig,
)

DIMENSION = 8
TEXTS = [f"word {n}" for n in range(30)]
QUICK = BatchConfig(delay=0.1)


@pytest.fixture
def server() -> Iterator[GeminiTestServer]:
    with GeminiTestServer(ServerConfig(batch=QUICK)) as running:
        yield running


def settings(server: GeminiTestServer, **changes: Any) -> Gemini:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "embedding_dimension": DIMENSION,
        "mode": "batch",
        "batch_poll_seconds": 0.02,
        **changes,
    }
    return Gemini(**values)


@dataclass
class Ledger:
    """What the checkpoint would hold, in the order it was told."""

    events: list[BatchJob | JobEnd] = field(default_factory=list)

    async def batch_job_created(self, job: BatchJob) -> None:
        self.events.append(job)

    async def batch_job_ended(self, end: JobEnd) -> None:
        self.events.append(end)

    @property
    def created(self) -> list[BatchJob]:
        return [event for event in self.events if isinstance(event, BatchJob)]

    @property
    def ended(self) -> dict[str, JobEnd]:
        return {event.name: event for event in self.events if isinstance(event, JobEnd)}


@dataclass
class Phase:
    batch: BatchEmbedding
    store: EmbeddingStore
    ledger: Ledger
    shutdown: Shutdown


@asynccontextmanager
async def phase(folder: Path, gemini: Gemini, ledger: Ledger | None = None) -> AsyncIterator[Phase]:
    store = EmbeddingStore(
        folder / STORE_FILE, Namespace(gemini.model_id, DIMENSION, gemini.task_type)
    )
    api = BatchApi(gemini, DEFAULT_API_KEY)
    shutdown = Shutdown()
    ledger = ledger or Ledger()
    await store.open()
    try:
        async with shutdown.watching():
            with JobProgress(60.0, bar=False) as progress:
                yield Phase(
                    BatchEmbedding(api, store, ledger, gemini, shutdown, progress),
                    store,
                    ledger,
                    shutdown,
                )
    finally:
        await store.close()
        await api.aclose()


async def online_vectors(gemini: Gemini, texts: Sequence[str]) -> np.ndarray:
    provider = GeminiProvider(gemini.model_copy(update={"mode": "online"}), DEFAULT_API_KEY)
    try:
        return await provider.embed(texts)
    finally:
        await provider.aclose()


async def stored(store: EmbeddingStore, texts: Sequence[str]) -> dict[str, np.ndarray]:
    return await store.get_many(list(texts))


def run(outcome: BatchOutcome | None) -> BatchOutcome:
    assert outcome is not None
    return outcome


# The jobs' vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("inline_mb", [10.0, 0.001], ids=["inline", "file"])
@pytest.mark.asyncio
async def test_a_job_stores_the_online_vectors_byte_for_byte(
    server: GeminiTestServer, tmp_path: Path, inline_mb: float
) -> None:
    gemini = settings(server, batch_inline_mb=inline_mb)
    async with phase(tmp_path, gemini) as running:
        outcome = run(await running.batch.run(TEXTS))
        vectors = await stored(running.store, TEXTS)

    expected = await online_vectors(gemini, TEXTS)
    assert set(vectors) == set(TEXTS)
    for text, row in zip(TEXTS, expected, strict=True):
        assert vectors[text].tobytes() == row.tobytes()
    (job,) = server.submitted_jobs()
    assert job.texts == tuple(TEXTS)
    assert job.source == "inline" if inline_mb > 1 else job.source.startswith("files/")
    assert outcome.refused == {}
    figures = outcome.statistics
    assert (figures.jobs_created, figures.texts_submitted, figures.texts_stored) == (1, 30, 30)
    assert figures.estimated_tokens == 10 * 2 + 20 * 2  # "word 7": 6 bytes, "word 17": 7
    # Recorded when created, then when ended; nothing else.
    assert [type(event) for event in running.ledger.events] == [BatchJob, JobEnd]
    assert running.ledger.created[0].texts == tuple(TEXTS)
    assert running.ledger.ended[job.name].state == "JOB_STATE_SUCCEEDED"


@pytest.mark.asyncio
async def test_only_the_texts_the_store_lacks_are_sent_in_jobs_of_the_set_size(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    gemini = settings(server, batch_job_texts=8)
    async with phase(tmp_path, gemini) as running:
        await running.store.put_many(
            zip(TEXTS[:10], await online_vectors(gemini, TEXTS[:10]), strict=True)
        )
        outcome = run(await running.batch.run([*TEXTS, *TEXTS[:5]]))  # duplicates sent once
        vectors = await stored(running.store, TEXTS)

    jobs = server.submitted_jobs()
    assert [len(job.texts) for job in jobs] == [8, 8, 4]
    assert [text for job in jobs for text in job.texts] == TEXTS[10:]
    assert len(vectors) == 30
    assert outcome.statistics.texts_missing == 20


@pytest.mark.asyncio
async def test_nothing_missing_creates_no_job(server: GeminiTestServer, tmp_path: Path) -> None:
    gemini = settings(server)
    async with phase(tmp_path, gemini) as running:
        await running.store.put_many(zip(TEXTS, await online_vectors(gemini, TEXTS), strict=True))
        outcome = run(await running.batch.run(TEXTS))
    assert server.submitted_jobs() == []
    assert outcome.statistics.jobs_created == 0


@pytest.mark.parametrize(("minimum", "jobs"), [(31, 0), (30, 1)])
@pytest.mark.asyncio
async def test_auto_mode_batches_from_batch_min_texts_missing(
    server: GeminiTestServer, tmp_path: Path, minimum: int, jobs: int
) -> None:
    gemini = settings(server, mode="auto", batch_min_texts=minimum)
    async with phase(tmp_path, gemini) as running:
        outcome = await running.batch.run(TEXTS)
    assert len(server.submitted_jobs()) == jobs
    assert (outcome is None) == (jobs == 0)


def test_jobs_are_cut_by_count_and_sent_inline_only_below_the_size() -> None:
    texts = ["a" * 10] * 5 + ["b" * 100] * 3
    jobs = split_jobs(texts, max_texts=5, inline_bytes=299, size_of=len)
    assert [(len(chunk), inline) for chunk, inline in jobs] == [(5, True), (3, False)]


# Failures --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_line_refused_for_good_fails_its_text_alone(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    refusing = BatchConfig(delay=0.1, error_marker="word 1", error_status="INVALID_ARGUMENT")
    server.reconfigure(ServerConfig(batch=refusing))
    async with phase(tmp_path, settings(server)) as running:
        outcome = run(await running.batch.run(TEXTS))
        vectors = await stored(running.store, TEXTS)

    marked = [text for text in TEXTS if "word 1" in text]  # word 1, word 10 ... word 19
    assert set(outcome.refused) == set(marked)
    assert all(isinstance(error, UnembeddableTextError) for error in outcome.refused.values())
    assert "code 3" in str(outcome.refused["word 1"])
    assert set(vectors) == set(TEXTS) - set(marked)
    (job,) = server.submitted_jobs()  # nothing to resubmit
    assert set(running.ledger.ended[job.name].refused) == set(marked)
    assert outcome.statistics.texts_refused == len(marked)


@pytest.mark.asyncio
async def test_lines_failed_for_a_passing_reason_are_resubmitted(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    passing = BatchConfig(delay=0.1, error_positions=frozenset({3, 5}), error_status="INTERNAL")
    server.reconfigure(ServerConfig(batch=passing))
    async with phase(tmp_path, settings(server)) as running:
        outcome = run(await running.batch.run(TEXTS))
        vectors = await stored(running.store, TEXTS)

    first, second = server.submitted_jobs()
    assert second.texts == (TEXTS[3], TEXTS[5])  # its positions 0 and 1 do not fail
    assert running.ledger.ended[first.name].refused == {}
    assert len(vectors) == 30 and outcome.refused == {}


@pytest.mark.parametrize("end", [BatchState.FAILED, BatchState.EXPIRED])
@pytest.mark.asyncio
async def test_a_job_that_did_not_succeed_is_resubmitted_once(
    server: GeminiTestServer, tmp_path: Path, end: BatchState, caplog: pytest.LogCaptureFixture
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=0.05, end_states=(end,))))
    gemini = settings(server)
    with caplog.at_level(logging.WARNING):
        async with phase(tmp_path, gemini) as running:
            outcome = run(await running.batch.run(TEXTS))
            vectors = await stored(running.store, TEXTS)

    first, second = server.submitted_jobs()
    assert second.texts == first.texts
    assert [job.attempt for job in running.ledger.created] == [1, 2]
    assert len(vectors) == 30 and outcome.refused == {}
    assert outcome.statistics.jobs_failed == 1
    state = "JOB_STATE_" + end.name
    assert running.ledger.ended[first.name].state == state
    assert any(first.name in line and state in line for line in caplog.messages)


@pytest.mark.asyncio
async def test_texts_whose_resubmitted_job_fails_too_fail_as_an_api_failure(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=0.05, end_state=BatchState.FAILED)))
    async with phase(tmp_path, settings(server)) as running:
        outcome = run(await running.batch.run(TEXTS))
    assert len(server.submitted_jobs()) == 2  # once resubmitted, never a third time
    assert set(outcome.refused) == set(TEXTS)
    assert all(type(error) is RetryableEmbeddingError for error in outcome.refused.values())
    assert outcome.statistics.texts_failed == 30


@pytest.mark.asyncio
async def test_with_the_online_fallback_a_failed_jobs_texts_are_left_to_the_run(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=0.05, end_state=BatchState.EXPIRED)))
    async with phase(tmp_path, settings(server, batch_fallback="online")) as running:
        outcome = run(await running.batch.run(TEXTS))
        vectors = await stored(running.store, TEXTS)
    assert len(server.submitted_jobs()) == 1
    assert outcome.refused == {} and vectors == {}
    assert outcome.statistics.texts_online == 30


@pytest.mark.asyncio
async def test_a_job_past_its_timeout_is_cancelled_and_resubmitted(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=30.0)))
    gemini = settings(server, batch_timeout_hours=0.2 / 3600)  # 0.2 s
    async with phase(tmp_path, gemini) as running:
        work = asyncio.ensure_future(running.batch.run(TEXTS))
        while not server.submitted_jobs():
            await asyncio.sleep(0.005)
        server.reconfigure(ServerConfig(batch=QUICK))  # the resubmission is quick
        outcome = run(await work)
    first, second = server.submitted_jobs()
    assert first.cancelled is not None and second.cancelled is None
    assert running.ledger.ended[first.name].state == "JOB_STATE_CANCELLED"
    assert outcome.refused == {} and outcome.statistics.texts_stored == 30


# Durable jobs ------------------------------------------------------------------------------


async def killed_after_two_jobs(folder: Path, gemini: Gemini) -> Ledger:
    """What a kill leaves once two jobs are created and recorded, before either ended."""
    async with phase(folder, gemini) as first:
        work = asyncio.ensure_future(first.batch.run(TEXTS))
        while len(first.ledger.created) < 2:
            await asyncio.sleep(0.005)
        work.cancel()
        with pytest.raises(asyncio.CancelledError):
            await work
    return first.ledger


@pytest.mark.asyncio
async def test_a_resumed_run_waits_on_the_recorded_jobs_and_creates_none(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=0.5)))
    gemini = settings(server, batch_job_texts=20)
    first = await killed_after_two_jobs(tmp_path, gemini)

    async with phase(tmp_path, gemini) as resumed:
        outcome = run(await resumed.batch.run(TEXTS, first.created, first.ended))
        vectors = await stored(resumed.store, TEXTS)
    assert len(server.submitted_jobs()) == 2
    assert resumed.ledger.created == []
    assert set(resumed.ledger.ended) == {job.name for job in first.created}
    assert len(vectors) == 30
    assert outcome.statistics.jobs_reattached == 2


class KilledBeforeRecording(Ledger):
    """A kill between the API's answer and the checkpoint's write: nothing is recorded."""

    async def batch_job_created(self, job: BatchJob) -> None:
        raise asyncio.CancelledError


@pytest.mark.asyncio
async def test_a_job_created_but_not_recorded_is_adopted_by_the_resumed_run(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=0.3)))
    gemini = settings(server)
    before = time.time() - 1
    async with phase(tmp_path, gemini, KilledBeforeRecording()) as first:
        with pytest.raises(asyncio.CancelledError):
            await first.batch.run(TEXTS)
    (orphan,) = server.submitted_jobs()

    async with phase(tmp_path, gemini) as resumed:
        outcome = run(await resumed.batch.run(TEXTS, [], {}, resumed_since=before))
        vectors = await stored(resumed.store, TEXTS)
    assert [job.name for job in server.submitted_jobs()] == [orphan.name]
    assert [job.name for job in resumed.ledger.created] == [orphan.name]  # recorded now
    figures = outcome.statistics
    assert len(vectors) == 30 and (figures.jobs_created, figures.jobs_reattached) == (0, 1)

    # A run that is not resuming never adopts another's job: a fresh one is its own.
    async with phase(tmp_path / "fresh", gemini) as fresh:
        run(await fresh.batch.run(TEXTS))
    assert len(server.submitted_jobs()) == 2


@pytest.mark.asyncio
async def test_a_resumed_run_does_not_ask_again_for_a_text_a_job_refused(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(
        ServerConfig(
            batch=BatchConfig(delay=0.05, error_marker="word 2", error_status="INVALID_ARGUMENT")
        )
    )
    gemini = settings(server)
    async with phase(tmp_path, gemini) as first:
        run(await first.batch.run(TEXTS))
    async with phase(tmp_path, gemini) as resumed:
        outcome = run(await resumed.batch.run(TEXTS, first.ledger.created, first.ledger.ended))
    assert len(server.submitted_jobs()) == 1
    assert set(outcome.refused) == {"word 2", *(f"word {n}" for n in range(20, 30))}


@pytest.mark.asyncio
async def test_a_signal_while_waiting_stops_at_once_and_leaves_the_job_running(
    server: GeminiTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=30.0)))
    gemini = settings(server, batch_poll_seconds=5.0)
    shutdown_waits = asyncio.get_running_loop().time()
    with caplog.at_level(logging.WARNING):
        async with phase(tmp_path, gemini) as running:
            with running.shutdown.installed(), running.shutdown.deferring():
                work = asyncio.ensure_future(running.batch.run(TEXTS))
                while not running.ledger.created:
                    await asyncio.sleep(0.005)
                os.kill(os.getpid(), signal.SIGTERM)
                with pytest.raises(JobsLeftRunning) as stopped:
                    await work
    waited = asyncio.get_running_loop().time() - shutdown_waits
    assert stopped.value.signal_number == signal.SIGTERM
    assert stopped.value.jobs == (server.submitted_jobs()[0].name,)
    assert waited < 3.0  # not the 5 s poll, nor the 30 s job
    (job,) = server.submitted_jobs()
    assert job.cancelled is None
    assert running.ledger.ended == {}
    assert any("--resume" in line and job.name in line for line in caplog.messages)


@pytest.mark.asyncio
async def test_job_lines_list_each_job_and_cancel_the_open_ones(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    server.reconfigure(ServerConfig(batch=BatchConfig(delay=30.0)))
    gemini = settings(server, batch_job_texts=20)
    jobs = (await killed_after_two_jobs(tmp_path, gemini)).created
    api = BatchApi(gemini, DEFAULT_API_KEY)
    try:
        listed = await job_lines(api, jobs)
        cancelled = await job_lines(api, jobs, cancel=True)
        after = await job_lines(api, jobs)
    finally:
        await api.aclose()
    assert [line.split()[:2] for line in listed] == [
        [jobs[0].name, "JOB_STATE_PENDING"],
        [jobs[1].name, "JOB_STATE_PENDING"],
    ]
    assert "20 texts" in listed[0] and "10 texts" in listed[1]
    assert all("-> cancel requested" in line for line in cancelled)
    assert all(line.split()[1] == "JOB_STATE_CANCELLED" for line in after)
    assert all(job.cancelled is not None for job in server.submitted_jobs())


# Reading a results file ----------------------------------------------------------------------


def results_file(lines: Sequence[dict[str, Any] | str]) -> bytes:
    return b"".join(
        (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines
    )


def result(key: str | None, values: list[float]) -> dict[str, Any]:
    line: dict[str, Any] = {"response": {"embedding": {"values": values}}}
    if key is not None:
        line["key"] = key
    return line


VALUES = [[float(i + j) for j in range(DIMENSION)] for i in range(1, 4)]


def test_a_results_file_is_read_by_key_into_the_checked_vectors(
    server: GeminiTestServer,
) -> None:
    api = BatchApi(settings(server), DEFAULT_API_KEY)
    content = results_file(
        [
            result("2", VALUES[2]),
            "",
            {"key": "1", "error": {"code": 3, "message": "no"}},
            result("0", VALUES[0]),
        ]
    )
    read = api._from_file("batches/x", content, 3)
    expected = checked_vectors(np.asarray([VALUES[0], VALUES[2]]), 2, DIMENSION)
    assert sorted(read.vectors) == [0, 2]
    assert read.vectors[0].tobytes() == expected[0].tobytes()
    assert read.vectors[2].tobytes() == expected[1].tobytes()
    assert read.errors == {1: LineError(3, "no")} and read.errors[1].permanent


def test_results_without_keys_are_taken_in_line_order(server: GeminiTestServer) -> None:
    api = BatchApi(settings(server), DEFAULT_API_KEY)
    read = api._from_file("batches/x", results_file([result(None, v) for v in VALUES]), 3)
    assert [read.vectors[i].tobytes() for i in range(3)] == [
        row.tobytes() for row in checked_vectors(np.asarray(VALUES), 3, DIMENSION)
    ]


def test_a_line_without_a_usable_vector_fails_that_line_alone(server: GeminiTestServer) -> None:
    # Every field of a result is optional in the SDK's types: a server may leave any out.
    api = BatchApi(settings(server), DEFAULT_API_KEY)
    lines: list[dict[str, Any] | str] = [
        {"key": 0, **result(None, VALUES[0])},  # a key as a number
        result("1", VALUES[1][:3]),  # too few values
        {"key": "2", "response": {"embedding": None}},
        {"key": "3", "response": {}},
        {"key": "4", "error": {"code": None, "message": None}},
        result("5", [0.0] * DIMENSION),
        result("6", VALUES[2]),
    ]
    read = api._from_file("batches/x", results_file(lines), 7)
    assert sorted(read.vectors) == [0, 6]
    assert sorted(read.errors) == [1, 2, 3, 4, 5]
    assert "3 values" in read.errors[1].message
    assert not any(error.permanent for error in read.errors.values())  # tried again
    assert read.vectors[6].tobytes() == checked_vectors(np.asarray([VALUES[2]]), 1, 8)[0].tobytes()


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([result("0", VALUES[0]), result("1", VALUES[1])], "2 lines for 3 texts"),
        ([result("0", VALUES[0]), result("0", VALUES[1]), result("2", VALUES[2])], "key 0"),
        ([result("0", VALUES[0]), result("7", VALUES[1]), result("2", VALUES[2])], "key 7"),
        ([result("0", VALUES[0]), "{not json", result("2", VALUES[2])], "line 2"),
    ],
)
def test_a_results_file_that_does_not_fit_its_job_is_a_passing_error(
    server: GeminiTestServer, lines: list[Any], problem: str
) -> None:
    api = BatchApi(settings(server), DEFAULT_API_KEY)
    with pytest.raises(RetryableEmbeddingError, match=problem):
        api._from_file("batches/x", results_file(lines), 3)


def test_a_mapped_results_file_that_does_not_fit_is_still_a_passing_error(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    # The results file is read through a memory map: the error must leave the map free
    # to close, or it reaches the run as a BufferError instead.
    api = BatchApi(settings(server), DEFAULT_API_KEY)
    path = tmp_path / "results.jsonl"
    path.write_bytes(results_file([result("0", VALUES[0]), "{not json", result("2", VALUES[2])]))
    with path.open("rb") as file, pytest.raises(RetryableEmbeddingError, match="line 2"):
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as content:
            api._from_file("batches/x", content, 3)


class UnreadableResults(BatchApi):
    """The real API, but every read of a job's results fails as a torn download would."""

    reads = 0

    async def results(self, name: str, count: int) -> JobResults:
        self.reads += 1
        raise RetryableEmbeddingError(f"{name}: the download was cut short")


@pytest.mark.asyncio
async def test_results_that_cannot_be_read_count_as_a_failed_job_after_the_retries(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    gemini = settings(server, max_retries=2)
    async with phase(tmp_path, gemini) as running:
        unreadable = UnreadableResults(gemini, DEFAULT_API_KEY)
        running.batch._api = unreadable
        try:
            outcome = run(await running.batch.run(TEXTS))
        finally:
            await unreadable.aclose()
    first, _ = server.submitted_jobs()  # resubmitted once, unreadable again
    assert unreadable.reads == 2 * 3
    assert running.ledger.ended[first.name].state == "JOB_STATE_SUCCEEDED_UNREADABLE"
    assert set(outcome.refused) == set(TEXTS)


@pytest.mark.asyncio
async def test_a_recorded_job_the_api_no_longer_knows_has_its_texts_resubmitted(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    # A server that lost the job (or a user who deleted it) must not wedge every resume.
    lost = BatchJob("batches/lostjob", tuple(TEXTS), time.time() - 60)
    async with phase(tmp_path, settings(server)) as resumed:
        outcome = run(await resumed.batch.run(TEXTS, [lost], {}))
        vectors = await stored(resumed.store, TEXTS)
    assert resumed.ledger.ended[lost.name].state == "JOB_STATE_NOT_FOUND"
    (again,) = server.submitted_jobs()
    assert again.texts == tuple(TEXTS)
    assert len(vectors) == 30 and outcome.refused == {}


class LosesTheFirstAnswer(BatchApi):
    """The real API, but the answer to the first create is lost after the job was made
    (a read timeout, a 503 from a proxy): the job exists, the run was not told."""

    creates = 0

    async def create(self, texts: Sequence[str], display_name: str, inline: bool) -> str:
        self.creates += 1
        name = await super().create(texts, display_name, inline)
        if self.creates == 1:
            raise RetryableEmbeddingError("the embedding request timed out (ReadTimeout)")
        return name


@pytest.mark.asyncio
@pytest.mark.parametrize("inline_mb", [10.0, 0.001], ids=["inline", "file"])
async def test_a_create_whose_answer_was_lost_is_found_not_made_again(
    server: GeminiTestServer, tmp_path: Path, inline_mb: float
) -> None:
    gemini = settings(server, batch_inline_mb=inline_mb)
    async with phase(tmp_path, gemini) as running:
        losing = LosesTheFirstAnswer(gemini, DEFAULT_API_KEY)
        running.batch._api = losing
        try:
            outcome = run(await running.batch.run(TEXTS))
        finally:
            await losing.aclose()
    (job,) = server.submitted_jobs()
    assert losing.creates == 1
    assert [recorded.name for recorded in running.ledger.created] == [job.name]
    assert outcome.statistics.texts_stored == 30
    assert len(server.uploads()) == (0 if inline_mb > 1 else 1)


@pytest.mark.asyncio
async def test_a_server_gone_mid_wait_is_a_passing_error_not_a_crash(tmp_path: Path) -> None:
    with GeminiTestServer(ServerConfig(batch=BatchConfig(delay=30.0))) as server:
        gemini = settings(server, max_retries=1)
        async with phase(tmp_path, gemini) as running:
            work = asyncio.ensure_future(running.batch.run(TEXTS))
            while not running.ledger.created:
                await asyncio.sleep(0.005)
            server.close()
            api = BatchApi(gemini, DEFAULT_API_KEY)
            try:
                with pytest.raises(RetryableEmbeddingError, match="ConnectError"):
                    await api.status(running.ledger.created[0].name)
            finally:
                await api.aclose()
            await asyncio.sleep(0.1)  # a few polls fail, and are only logged
            assert not work.done()
            work.cancel()
            with pytest.raises(asyncio.CancelledError):
                await work
