"""tests/gemini_server.py's Files and Batch API: the real google-genai client runs batch jobs.

Every test drives the SDK's own ``client.aio.batches`` and ``client.aio.files``, so they
also pin what the SDK sends and how it parses the answers (what the batch mode relies on).
The job delays are fractions of a second and polls are 10 ms apart: the file runs in a
couple of seconds. The SDK warns that ``create_embeddings`` is experimental; that one
warning is filtered here (and asserted once), nothing else.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from google.genai._common import ExperimentalWarning

from tests.gemini_server import (
    DEFAULT_API_KEY,
    BatchConfig,
    BatchState,
    GeminiTestServer,
    ServerConfig,
    _parser,
    config_from_args,
    expected_embedding,
)
from tests.test_gemini_server import MODEL, NO_CA_BUNDLE, embed, sdk_client

pytestmark = pytest.mark.filterwarnings(
    r"ignore:batches\.create_embeddings\(\) is experimental:"
    "google.genai._common.ExperimentalWarning"
)

State = types.JobState
FINAL_STATES = {
    State.JOB_STATE_SUCCEEDED,
    State.JOB_STATE_FAILED,
    State.JOB_STATE_CANCELLED,
    State.JOB_STATE_EXPIRED,
}
TEXTS = ["apple", "pear", "river bank"]


@pytest.fixture
def server() -> Iterator[GeminiTestServer]:
    with GeminiTestServer(ServerConfig()) as running:
        yield running


def inline_source(texts: list[str], dimension: int = 8) -> types.EmbeddingsBatchJobSource:
    config = types.EmbedContentConfig(
        task_type="SEMANTIC_SIMILARITY", output_dimensionality=dimension
    )
    batch = types.EmbedContentBatch(contents=texts, config=config)
    return types.EmbeddingsBatchJobSource(inlined_requests=batch)


def jsonl(lines: Sequence[dict[str, Any] | str]) -> bytes:
    """An input file: dicts as JSON lines, strings written as they are (malformed lines)."""
    return b"".join(
        (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines
    )


def file_line(key: str, text: str, dimension: int = 8) -> dict[str, Any]:
    """One input line as Google documents it (snake_case, as their example writes it)."""
    return {
        "key": key,
        "request": {"content": {"parts": [{"text": text}]}, "output_dimensionality": dimension},
    }


async def upload(client: genai.Client, content: bytes) -> types.File:
    # No mime type is guessed for .jsonl on every system: the batch mode must name it.
    config = types.UploadFileConfig(mime_type="application/jsonl", display_name="requests")
    return await client.aio.files.upload(file=io.BytesIO(content), config=config)


async def until_done(client: genai.Client, name: str) -> tuple[types.BatchJob, list[State]]:
    """Polls the job until it ends; returns it and the distinct states seen, in order."""
    seen: list[State] = []
    deadline = time.monotonic() + 10
    while True:
        job = await client.aio.batches.get(name=name)
        assert job.state is not None
        if not seen or seen[-1] != job.state:
            seen.append(job.state)
        if job.state in FINAL_STATES:
            return job, seen
        assert time.monotonic() < deadline, f"{name} is still {job.state}"
        await asyncio.sleep(0.01)


def vectors_of(job: types.BatchJob) -> list[list[float] | None]:
    """The inline results, one per request: its vector, or None for an error."""
    assert job.dest is not None and job.dest.inlined_embed_content_responses is not None
    vectors: list[list[float] | None] = []
    for response in job.dest.inlined_embed_content_responses:
        if response.error is not None:
            assert response.response is None
            vectors.append(None)
        else:
            assert response.response is not None and response.response.embedding is not None
            vectors.append(list(response.response.embedding.values or []))
    return vectors


def is_expected(values: list[float] | None, text: str, dimension: int = 8) -> bool:
    """True if `values` is the server's vector for `text` (float32, so exactly)."""
    expected = expected_embedding(MODEL, text, dimension)
    return values is not None and np.array_equal(np.asarray(values, np.float32), expected)


def result_lines(content: bytes) -> list[dict[str, Any]]:
    assert content.endswith(b"\n")
    return [json.loads(line) for line in content.splitlines()]


# --- inline jobs ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_inline_job_answers_the_online_vectors_in_request_order(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        created = await client.aio.batches.create_embeddings(
            model=MODEL, src=inline_source(TEXTS), config={"display_name": "three words"}
        )
        job, _ = await until_done(client, created.name or "")
        online = await embed(client, TEXTS, dimension=8)
    assert created.state == State.JOB_STATE_PENDING  # as created, whatever the delay
    assert created.name is not None and created.name.startswith("batches/")
    assert (job.name, job.display_name, job.model) == (
        created.name,
        "three words",
        f"models/{MODEL}",
    )
    assert job.state == State.JOB_STATE_SUCCEEDED
    assert job.create_time is not None and job.end_time is not None
    assert job.create_time <= job.end_time
    vectors = vectors_of(job)
    assert vectors == online  # the very numbers the online method sends
    assert all(is_expected(vector, text) for text, vector in zip(TEXTS, vectors))


@pytest.mark.asyncio
async def test_the_job_and_its_requests_are_recorded_as_sent(server: GeminiTestServer) -> None:
    async with sdk_client(server) as client:
        created = await client.aio.batches.create_embeddings(
            model=MODEL, src=inline_source(TEXTS, dimension=16)
        )
        await client.aio.batches.get(name=created.name or "")
    (job,) = server.submitted_jobs()
    assert (job.name, job.model, job.source) == (created.name, MODEL, "inline")
    assert job.texts == tuple(TEXTS)
    assert job.dimensions == (16, 16, 16)
    assert job.keys == (None, None, None)
    assert job.api_key == DEFAULT_API_KEY
    assert job.end_state is BatchState.SUCCEEDED
    assert [(arrival.http_method, arrival.api_method) for arrival in server.arrivals()] == [
        ("POST", "asyncBatchEmbedContent"),
        ("GET", "batches.get"),
    ]
    create = server.arrivals()[0]
    assert create.path == f"/v1/models/{MODEL}:asyncBatchEmbedContent"
    assert (create.model, create.status, create.outcome) == (MODEL, 200, "ok")
    assert create.texts == ()  # only online texts count in texts_requested
    assert server.texts_requested() == {}


@pytest.mark.asyncio
async def test_create_embeddings_warns_that_it_is_experimental(server: GeminiTestServer) -> None:
    async with sdk_client(server) as client:
        with pytest.warns(ExperimentalWarning, match="create_embeddings"):
            await client.aio.batches.create_embeddings(model=MODEL, src=inline_source(["apple"]))


@pytest.mark.asyncio
async def test_the_delay_takes_a_job_from_pending_through_running_to_succeeded() -> None:
    with GeminiTestServer(ServerConfig(batch=BatchConfig(delay=0.3))) as server:
        async with sdk_client(server) as client:
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["apple"])
            )
            first = await client.aio.batches.get(name=created.name or "")
            job, seen = await until_done(client, created.name or "")
    assert first.state == State.JOB_STATE_PENDING
    assert first.dest is None  # no results before the end
    assert seen == [State.JOB_STATE_PENDING, State.JOB_STATE_RUNNING, State.JOB_STATE_SUCCEEDED]
    (vector,) = vectors_of(job)
    assert is_expected(vector, "apple")


# --- file jobs ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_file_job_reads_the_uploaded_jsonl_and_writes_keyed_results_in_order(
    server: GeminiTestServer, tmp_path: Path
) -> None:
    lines = [file_line(f"k{index}", text) for index, text in enumerate(TEXTS)]
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(jsonl(lines))
    async with sdk_client(server) as client:
        uploaded = await client.aio.files.upload(
            file=requests, config={"mime_type": "application/jsonl"}
        )
        created = await client.aio.batches.create_embeddings(
            model=MODEL, src={"file_name": uploaded.name}
        )
        job, _ = await until_done(client, created.name or "")
        assert job.dest is not None and job.dest.file_name is not None
        results = await client.aio.files.get(name=job.dest.file_name)
        content = await client.aio.files.download(file=results)
        online = await embed(client, TEXTS, dimension=8)
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.size_bytes == requests.stat().st_size
    assert job.state == State.JOB_STATE_SUCCEEDED
    assert job.dest.inlined_embed_content_responses is None
    assert results.source == types.FileSource.GENERATED
    assert results.download_uri is not None  # the SDK downloads only files that have one
    assert results.size_bytes == len(content)
    parsed = result_lines(content)
    assert [line["key"] for line in parsed] == ["k0", "k1", "k2"]
    assert [line["response"]["embedding"]["values"] for line in parsed] == online
    (submitted,) = server.submitted_jobs()
    assert (submitted.source, submitted.keys) == (uploaded.name, ("k0", "k1", "k2"))
    assert submitted.results_file == job.dest.file_name


@pytest.mark.asyncio
async def test_the_upload_is_resumable_in_chunks_and_recorded_byte_for_byte(
    server: GeminiTestServer,
) -> None:
    # Over the SDK's 8 MB chunk: two chunks, "upload" then "upload, finalize".
    content = bytes(range(256)) * (9 * 4096)
    async with sdk_client(server) as client:
        uploaded = await client.aio.files.upload(
            file=io.BytesIO(content),
            config={"mime_type": "application/octet-stream", "display_name": "blob"},
        )
        fetched = await client.aio.files.get(name=uploaded.name or "")
    (record,) = server.uploads()
    assert (record.name, record.display_name) == (uploaded.name, "blob")
    assert (record.declared_size, record.received, record.chunks) == (len(content),) * 2 + (2,)
    assert record.finalized and record.content == content
    assert record.api_key == DEFAULT_API_KEY
    start, *chunks = server.arrivals()[:3]
    assert (start.api_method, start.api_key) == ("files.create", DEFAULT_API_KEY)
    # The chunks go to the upload URL without a key: its upload id is the credential.
    assert [(chunk.api_method, chunk.api_key, chunk.status) for chunk in chunks] == [
        ("files.upload", None, 200),
        ("files.upload", None, 200),
    ]
    assert (fetched.name, fetched.size_bytes, fetched.mime_type) == (
        uploaded.name,
        len(content),
        "application/octet-stream",
    )
    assert fetched.source == types.FileSource.UPLOADED


@pytest.mark.asyncio
async def test_uploaded_files_cannot_be_downloaded_and_missing_ones_are_refused(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        uploaded = await upload(client, jsonl([file_line("a", "apple")]))
        with pytest.raises(errors.ClientError) as not_generated:
            await client.aio.files.download(file=uploaded.name or "")
        with pytest.raises(errors.ClientError) as missing_input:
            await client.aio.batches.create_embeddings(
                model=MODEL, src={"file_name": "files/nosuchfile"}
            )
        await client.aio.files.delete(name=uploaded.name or "")
        with pytest.raises(errors.ClientError) as deleted:
            await client.aio.files.get(name=uploaded.name or "")
    assert (not_generated.value.code, not_generated.value.status) == (400, "INVALID_ARGUMENT")
    assert (missing_input.value.code, missing_input.value.status) == (404, "NOT_FOUND")
    assert (deleted.value.code, deleted.value.status) == (403, "PERMISSION_DENIED")
    assert server.submitted_jobs() == []


@pytest.mark.asyncio
async def test_upload_chunks_answer_their_status_and_a_wrong_offset_ends_the_upload(
    server: GeminiTestServer,
) -> None:
    # What the SDK never sends but its retry loop depends on: every chunk answer carries
    # X-Goog-Upload-Status, errors included (without it the SDK sleeps 1, 2, 4 s and retries).
    start_headers = {
        "x-goog-api-key": DEFAULT_API_KEY,
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "10",
        "X-Goog-Upload-Header-Content-Type": "application/jsonl",
    }
    async with httpx.AsyncClient(base_url=server.base_url, verify=NO_CA_BUNDLE) as client:
        started = await client.post(
            "/upload/v1beta/files", json={"file": {}}, headers=start_headers
        )
        url = started.headers["x-goog-upload-url"]
        first = await client.post(
            url,
            content=b"01234",
            headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
        )
        query = await client.post(url, headers={"X-Goog-Upload-Command": "query"})
        misplaced = await client.post(
            url,
            content=b"56789",
            headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "3"},
        )
        after = await client.post(
            url,
            content=b"56789",
            headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "5"},
        )
    assert started.status_code == 200 and started.content == b""
    assert started.headers["x-goog-upload-status"] == "active"
    assert url.startswith(f"{server.base_url}/upload/v1beta/files?upload_id=")
    assert (first.status_code, first.headers["x-goog-upload-status"]) == (200, "active")
    assert query.headers["x-goog-upload-size-received"] == "5"
    assert (misplaced.status_code, misplaced.headers["x-goog-upload-status"]) == (400, "final")
    assert "starts at 3" in misplaced.json()["error"]["message"]
    assert (after.status_code, after.headers["x-goog-upload-status"]) == (404, "final")
    (record,) = server.uploads()
    assert (record.received, record.finalized) == (5, False)


@pytest.mark.asyncio
async def test_concurrent_creates_and_polls_give_distinct_jobs_and_one_results_file(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        created = await asyncio.gather(
            *(
                client.aio.batches.create_embeddings(model=MODEL, src=inline_source([text]))
                for text in ["apple", "pear", "river", "stone", "cloud", "field"]
            )
        )
        uploaded = await upload(client, jsonl([file_line("a", "apple")]))
        file_job = await client.aio.batches.create_embeddings(
            model=MODEL, src={"file_name": uploaded.name}
        )
        polls = await asyncio.gather(
            *(client.aio.batches.get(name=file_job.name or "") for _ in range(8))
        )
        files = [stored.name async for stored in await client.aio.files.list()]
    assert len({job.name for job in created}) == 6
    assert len(server.submitted_jobs()) == 7
    results = {poll.dest.file_name for poll in polls if poll.dest is not None}
    assert len(results) == 1  # however many polls raced to compute them
    assert files == [results.pop(), uploaded.name]  # newest first


# --- errors inside a job --------------------------------------------------------------


@pytest.mark.asyncio
async def test_marked_texts_and_set_positions_fail_alone_in_an_inline_job() -> None:
    batch = BatchConfig(error_marker="#fail", error_positions=frozenset({3}))
    texts = ["apple", "pear #fail", "river", "stone", "cloud"]
    with GeminiTestServer(ServerConfig(batch=batch)) as server:
        async with sdk_client(server) as client:
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(texts)
            )
            job, _ = await until_done(client, created.name or "")
    assert job.state == State.JOB_STATE_SUCCEEDED  # a job with failed requests still succeeds
    vectors = vectors_of(job)
    assert [vector is None for vector in vectors] == [False, True, False, True, False]
    assert all(is_expected(vectors[index], texts[index]) for index in (0, 2, 4))
    assert job.dest is not None and job.dest.inlined_embed_content_responses is not None
    marked, positioned = (job.dest.inlined_embed_content_responses[i].error for i in (1, 3))
    assert marked is not None and positioned is not None
    assert (marked.code, positioned.code) == (13, 13)  # google.rpc.Code INTERNAL, not HTTP
    assert "#fail" in (marked.message or "")
    assert "position" in (positioned.message or "")


@pytest.mark.asyncio
async def test_an_inline_job_whose_every_request_failed_reaches_the_sdk_as_inlined_responses() -> (
    None
):
    # The SDK files inline results under inlined_embed_content_responses only when one of
    # them holds an embedding; errors alone land in inlined_responses. Batch mode must look
    # at both.
    batch = BatchConfig(error_positions=frozenset({0, 1}), error_status="RESOURCE_EXHAUSTED")
    with GeminiTestServer(ServerConfig(batch=batch)) as server:
        async with sdk_client(server) as client:
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["apple", "pear"])
            )
            job, _ = await until_done(client, created.name or "")
    assert job.dest is not None
    assert job.dest.inlined_embed_content_responses is None
    assert job.dest.inlined_responses is not None
    assert [response.error.code for response in job.dest.inlined_responses if response.error] == [
        8,
        8,
    ]


@pytest.mark.asyncio
async def test_error_lines_of_a_file_job_keep_their_key_and_place() -> None:
    batch = BatchConfig(error_marker="#fail", error_positions=frozenset({0}))
    lines: list[dict[str, Any] | str] = [
        file_line("first", "apple"),  # position 0
        file_line("marked", "pear #fail"),
        "{not json",
        file_line("too-wide", "river", dimension=5000),
        file_line("fine", "stone"),
    ]
    with GeminiTestServer(ServerConfig(batch=batch)) as server:
        async with sdk_client(server) as client:
            uploaded = await upload(client, jsonl(lines))
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src={"file_name": uploaded.name}
            )
            job, _ = await until_done(client, created.name or "")
            assert job.dest is not None and job.dest.file_name is not None
            parsed = result_lines(await client.aio.files.download(file=job.dest.file_name))
    assert job.state == State.JOB_STATE_SUCCEEDED
    assert [line.get("key") for line in parsed] == ["first", "marked", None, "too-wide", "fine"]
    assert [sorted(line) for line in parsed] == [
        ["error", "key"],
        ["error", "key"],
        ["error"],  # a line that is not JSON has no key to give back
        ["error", "key"],
        ["key", "response"],
    ]
    codes = [line["error"]["code"] for line in parsed[:4]]
    assert codes == [13, 13, 3, 3]  # set to fail: INTERNAL; malformed: INVALID_ARGUMENT
    assert "outputDimensionality" in parsed[3]["error"]["message"]
    assert is_expected(parsed[4]["response"]["embedding"]["values"], "stone")


# --- how jobs end ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("end_state", "sdk_state"),
    [(BatchState.FAILED, State.JOB_STATE_FAILED), (BatchState.EXPIRED, State.JOB_STATE_EXPIRED)],
)
async def test_a_job_set_to_fail_or_expire_ends_so_without_results(
    end_state: BatchState, sdk_state: State
) -> None:
    with GeminiTestServer(ServerConfig(batch=BatchConfig(end_state=end_state))) as server:
        async with sdk_client(server) as client:
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["apple"])
            )
            job, seen = await until_done(client, created.name or "")
    assert seen == [sdk_state]  # no delay: the first poll finds it ended
    assert job.dest is None
    assert job.end_time is not None


@pytest.mark.asyncio
async def test_end_states_are_dealt_job_by_job_then_the_default() -> None:
    batch = BatchConfig(end_states=(BatchState.EXPIRED, BatchState.FAILED))
    with GeminiTestServer(ServerConfig(batch=batch)) as server:
        async with sdk_client(server) as client:
            states = []
            for _ in range(3):
                created = await client.aio.batches.create_embeddings(
                    model=MODEL, src=inline_source(["apple"])
                )
                job, _ = await until_done(client, created.name or "")
                states.append(job.state)
    assert states == [State.JOB_STATE_EXPIRED, State.JOB_STATE_FAILED, State.JOB_STATE_SUCCEEDED]
    assert [job.end_state for job in server.submitted_jobs()] == [
        BatchState.EXPIRED,
        BatchState.FAILED,
        BatchState.SUCCEEDED,
    ]


@pytest.mark.asyncio
async def test_cancel_stops_a_running_job_but_leaves_an_ended_one_alone() -> None:
    with GeminiTestServer(ServerConfig(batch=BatchConfig(delay=60))) as server:
        async with sdk_client(server) as client:
            running = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["apple"])
            )
            await client.aio.batches.cancel(name=running.name or "")
            cancelled = await client.aio.batches.get(name=running.name or "")
            server.reconfigure(ServerConfig(batch=BatchConfig(delay=0)))
            ended = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["pear"])
            )
            await until_done(client, ended.name or "")
            await client.aio.batches.cancel(name=ended.name or "")
            after = await client.aio.batches.get(name=ended.name or "")
    assert cancelled.state == State.JOB_STATE_CANCELLED
    assert cancelled.dest is None and cancelled.end_time is not None
    assert after.state == State.JOB_STATE_SUCCEEDED
    assert [job.cancelled is not None for job in server.submitted_jobs()] == [True, False]


# --- listing, deleting ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_pages_through_every_job_newest_first_and_delete_removes_one(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        names = []
        for text in ["apple", "pear", "river"]:
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source([text])
            )
            names.append(created.name)
        pager = await client.aio.batches.list(config={"page_size": 2})
        first_page = [job.name for job in pager.page]
        # A job created between two pages comes before the first: no later page shifts.
        newer = await client.aio.batches.create_embeddings(
            model=MODEL, src=inline_source(["stone"])
        )
        listed = [job.name async for job in pager]
        deleted = await client.aio.batches.delete(name=names[1] or "")
        with pytest.raises(errors.ClientError) as gone:
            await client.aio.batches.get(name=names[1] or "")
        after = [job.name async for job in await client.aio.batches.list()]
    assert first_page == names[:0:-1]
    assert listed == names[::-1]
    assert [arrival.api_method for arrival in server.arrivals()].count("batches.list") == 3
    assert deleted.error is None
    assert (gone.value.code, gone.value.status) == (404, "NOT_FOUND")
    assert after == [newer.name, names[2], names[0]]
    assert [job.deleted for job in server.submitted_jobs()] == [False, True, False, False]


# --- keys, scripts, rates -------------------------------------------------------------


@pytest.mark.asyncio
async def test_batch_and_file_calls_check_the_key_like_the_online_ones(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server, key="not-the-key") as client:
        with pytest.raises(errors.ClientError) as create:
            await client.aio.batches.create_embeddings(model=MODEL, src=inline_source(["apple"]))
        with pytest.raises(errors.ClientError) as listing:
            await client.aio.batches.list()
        with pytest.raises(errors.ClientError) as upload_start:
            await upload(client, b"{}\n")
    for caught in (create, listing, upload_start):
        assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
        assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert [arrival.outcome for arrival in server.arrivals()] == ["bad_key"] * 3
    assert server.submitted_jobs() == [] and server.uploads() == []


@pytest.mark.asyncio
async def test_a_scripted_503_hits_a_poll_and_the_next_poll_succeeds(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        created = await client.aio.batches.create_embeddings(
            model=MODEL, src=inline_source(["apple"])
        )
        server.fail_next(1, 503)
        with pytest.raises(errors.ServerError) as caught:
            await client.aio.batches.get(name=created.name or "")
        job, _ = await until_done(client, created.name or "")
    assert caught.value.code == 503
    assert job.state == State.JOB_STATE_SUCCEEDED


@pytest.mark.asyncio
async def test_random_failure_rates_leave_batch_calls_alone() -> None:
    with GeminiTestServer(ServerConfig(server_error_rate=1.0)) as server:
        async with sdk_client(server) as client:
            with pytest.raises(errors.ServerError):
                await embed(client, ["apple"])
            created = await client.aio.batches.create_embeddings(
                model=MODEL, src=inline_source(["apple"])
            )
            job, _ = await until_done(client, created.name or "")
    assert job.state == State.JOB_STATE_SUCCEEDED


# --- configuration --------------------------------------------------------------------


def test_the_command_line_sets_the_batch_behaviour() -> None:
    args = _parser().parse_args(
        [
            "--batch-delay",
            "2.5",
            "--batch-end",
            "failed",
            "--batch-ends",
            "expired,succeeded",
            "--batch-error-marker",
            "#fail",
            "--batch-error-position",
            "0",
            "--batch-error-position",
            "7",
            "--batch-error-status",
            "UNAVAILABLE",
        ]
    )
    assert config_from_args(args).batch == BatchConfig(
        delay=2.5,
        end_state=BatchState.FAILED,
        end_states=(BatchState.EXPIRED, BatchState.SUCCEEDED),
        error_marker="#fail",
        error_positions=frozenset({0, 7}),
        error_status="UNAVAILABLE",
    )
    assert config_from_args(_parser().parse_args([])).batch == BatchConfig()


@pytest.mark.parametrize(
    "settings",
    [
        {"delay": -1.0},
        {"end_state": BatchState.CANCELLED},
        {"end_states": (BatchState.RUNNING,)},
        {"error_positions": frozenset({-1})},
        {"error_marker": ""},
        {"error_status": "TEAPOT"},
    ],
)
def test_an_impossible_batch_config_is_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BatchConfig(**settings)
