"""The Gemini Batch API through google-genai: create an embedding job, follow it, read it.

`client.aio.batches.create_embeddings` takes a job's requests inline, or as a JSONL file
uploaded through `client.aio.files`; the SDK marks it experimental (its warning is
silenced here, once, for that call). This module speaks to the API and nothing else:
which texts go in which job, what is recorded, and what happens to a failed job are
`asyncpipe.embeddings.batch_jobs`'s.

A job's requests are those of an online run: the same model, task type and output
dimension, one text each. Its vectors pass the same check (`decode.checked_vectors`),
so they are the online run's vectors bit for bit. Results come back in request order
for an inline job; a file job's results file has one line per input line, keyed by the
line's position. An error of one line fails that text alone (`LineError`).

The API's errors are mapped as for online requests (`gemini_sdk.mapped_sdk_errors`):
a bad key is a `FatalEmbeddingError`, a 429 or a 5xx a `RetryableEmbeddingError`.
"""

from __future__ import annotations

import io
import mmap
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from asyncpipe.embeddings.providers.decode import checked_vectors
from asyncpipe.embeddings.providers.gemini_sdk import mapped_sdk_errors, sdk_client
from asyncpipe.errors import RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini

if TYPE_CHECKING:
    from google.genai import types

#: The states a job ends in, as the SDK names them.
SUCCEEDED = "JOB_STATE_SUCCEEDED"
#: A job that succeeded in part has results to read, with errors on its failed lines.
PARTLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
WITH_RESULTS = frozenset({SUCCEEDED, PARTLY_SUCCEEDED})
#: asyncpipe's own name for the end of a job the API answers 404 for: deleted, or lost.
NOT_FOUND = "JOB_STATE_NOT_FOUND"
FINAL_STATES = frozenset(
    {*WITH_RESULTS, "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", NOT_FOUND}
)
#: google.rpc.Code numbers of a line's error that no retry can fix: the text itself is
#: refused (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION,
#: OUT_OF_RANGE, UNIMPLEMENTED). Any other code is passing (RESOURCE_EXHAUSTED, INTERNAL...).
PERMANENT_CODES = frozenset({3, 5, 7, 9, 11, 12})
_JSONL = "application/jsonl"
#: The most jobs a lookup by label reads from the API's list.
_LISTED_JOBS = 1000
#: A value of a result in JSON: "-0.0123456789," (14 bytes as Google and the local server
#: write them; 9 significant digits measure 13.9).
_RESULT_BYTES_PER_VALUE = 14
#: The largest results file a job is sized for: 6,200 texts at 3072 dimensions. The file
#: is streamed to disk; its float32 matrix (4 bytes a value, under a third) is in memory.
MAX_RESULT_BYTES = 256 * 2**20


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What a poll of a job says."""

    name: str
    #: JOB_STATE_PENDING, _RUNNING, _SUCCEEDED, _FAILED, _CANCELLED or _EXPIRED.
    state: str
    #: The API's message for a job that did not succeed ("" when it gave none).
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True, slots=True)
class LineError:
    """One request of a job that got an error instead of a vector."""

    #: google.rpc.Code of the error (0 when the API gave none).
    code: int
    message: str

    @property
    def permanent(self) -> bool:
        """True when the text itself is refused; False when a later try may succeed."""
        return self.code in PERMANENT_CODES

    def __str__(self) -> str:
        return f"the Batch API refused it (code {self.code}: {self.message})"


@dataclass(frozen=True, slots=True)
class JobResults:
    """A succeeded job's results, one per request, in request order."""

    #: The checked float32 vector of each text that got one (a read-only row of one matrix).
    vectors: dict[int, np.ndarray]
    errors: dict[int, LineError]


# As lenient as the SDK's own types (every field Optional): a line without a usable
# vector fails that line, not the job.
class _Embedding(msgspec.Struct, gc=False):
    values: list[float] | None = None


class _Response(msgspec.Struct, gc=False):
    embedding: _Embedding | None = None


class _Error(msgspec.Struct, gc=False):
    code: int | None = None
    message: str | None = None


class _ResultLine(msgspec.Struct, gc=False):
    key: str | int | None = None
    response: _Response | None = None
    error: _Error | None = None


_RESULT_LINE = msgspec.json.Decoder(_ResultLine)


class BatchApi:
    """Embedding jobs of one model, task type and dimension, on one google-genai client."""

    def __init__(self, settings: Gemini, api_key: str) -> None:
        from google.genai import types

        self._client = sdk_client(settings, api_key)
        self._model = settings.model_id
        self._dimension = settings.embedding_dimension
        self._task_type = settings.task_type
        #: Display name -> the input file uploaded for it.
        self._uploaded: dict[str, str | None] = {}
        self._config = types.EmbedContentConfig(
            task_type=settings.task_type, output_dimensionality=settings.embedding_dimension
        )

    @property
    def texts_per_job(self) -> int:
        """The most texts a job may hold for its results file to stay within
        `MAX_RESULT_BYTES`, and the float32 matrix it is read into within a third of that."""
        return max(1, MAX_RESULT_BYTES // (_RESULT_BYTES_PER_VALUE * self._dimension + 60))

    def text_bytes(self, text: str) -> int:
        """About what one text adds to an inline job, in bytes of JSON: its request, and
        its result, which comes back inside every poll of the succeeded job and is parsed
        by the SDK into Python objects (about 14 bytes a value, 35 of memory)."""
        return len(text.encode("utf-8")) + 120 + _RESULT_BYTES_PER_VALUE * self._dimension

    async def create(self, texts: Sequence[str], display_name: str, inline: bool) -> str:
        """A new job embedding `texts` (inline, or through an uploaded JSONL file); its name."""
        from google.genai import _common, types

        source: types.EmbeddingsBatchJobSourceOrDict
        with mapped_sdk_errors():
            if inline:
                batch = types.EmbedContentBatch(contents=list(texts), config=self._config)
                source = types.EmbeddingsBatchJobSource(inlined_requests=batch)
            else:
                # Uploaded once: a try again after a lost answer reuses the file.
                file_name = self._uploaded.get(display_name)
                if file_name is None:
                    uploaded = await self._client.aio.files.upload(
                        file=io.BytesIO(self._input_file(texts)),
                        # No mime type is guessed for .jsonl on every system: it is named.
                        config=types.UploadFileConfig(mime_type=_JSONL, display_name=display_name),
                    )
                    file_name = self._uploaded[display_name] = uploaded.name
                source = types.EmbeddingsBatchJobSource(file_name=file_name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _common.ExperimentalWarning)
                job = await self._client.aio.batches.create_embeddings(
                    model=self._model,
                    src=source,
                    config=types.CreateEmbeddingsBatchJobConfig(display_name=display_name),
                )
        if not job.name:
            raise RetryableEmbeddingError("the Batch API created a job with no name")
        return job.name

    async def status(self, name: str) -> JobStatus:
        with mapped_sdk_errors():
            job = await self._client.aio.batches.get(name=name)
        return _status_of(name, job)

    async def open_jobs_since(self, since: float, prefix: str) -> dict[str, tuple[str, float]]:
        """Display name -> (name, creation time) of the jobs not ended or with results,
        created at `since` (seconds since the epoch) or later, whose display name starts
        with `prefix`. At most `_LISTED_JOBS` jobs are read, in the order the API lists
        them (Google's is newest first, which no code here relies on)."""
        found: dict[str, tuple[str, float]] = {}
        with mapped_sdk_errors():
            pager = await self._client.aio.batches.list(config={"page_size": 100})
            read = 0
            async for job in pager:
                read += 1
                if read > _LISTED_JOBS:
                    break
                created = _seconds(job.create_time)
                label = job.display_name or ""
                if not job.name or not label.startswith(prefix) or label in found:
                    continue
                if created is not None and created < since:
                    continue
                status = _status_of(job.name, job)
                if not status.ended or status.state in WITH_RESULTS:
                    found[label] = (job.name, created if created is not None else since)
        return found

    async def cancel(self, name: str) -> None:
        with mapped_sdk_errors():
            await self._client.aio.batches.cancel(name=name)

    async def results(self, name: str, count: int) -> JobResults:
        """The results of the succeeded job `name` of `count` requests."""
        with mapped_sdk_errors():
            job = await self._client.aio.batches.get(name=name)
            destination = job.dest
            if destination is not None and destination.file_name:
                # Streamed to a file of its own, then read through a memory map: the
                # run never holds the whole results file in its memory.
                with tempfile.TemporaryFile(prefix="asyncpipe-results-") as spooled:
                    await self._client.aio.files.download(
                        file=destination.file_name, destination=spooled
                    )
                    spooled.flush()
                    if spooled.tell() == 0:
                        return self._from_file(name, b"", count)
                    with mmap.mmap(spooled.fileno(), 0, access=mmap.ACCESS_READ) as content:
                        return self._from_file(name, content, count)
        if destination is None:
            raise RetryableEmbeddingError(f"{name}: the job succeeded but holds no results")
        # The SDK files the responses under inlined_embed_content_responses when at least
        # one holds an embedding, and under inlined_responses when every one is an error.
        entries = destination.inlined_embed_content_responses or destination.inlined_responses
        return self._from_inline(name, list(entries or ()), count)

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def _input_file(self, texts: Sequence[str]) -> bytes:
        """The JSONL input: one EmbedContentRequest a line, keyed by its position."""
        request = {"taskType": self._task_type, "outputDimensionality": self._dimension}
        lines = (
            {"key": str(index), "request": {"content": {"parts": [{"text": text}]}, **request}}
            for index, text in enumerate(texts)
        )
        return b"".join(msgspec.json.encode(line) + b"\n" for line in lines)

    def _from_inline(self, name: str, entries: list[Any], count: int) -> JobResults:
        if len(entries) != count:
            raise RetryableEmbeddingError(
                f"{name}: the job holds {len(entries)} results for {count} texts"
            )
        results = _Rows(count, self._dimension)
        for index, entry in enumerate(entries):
            error = getattr(entry, "error", None)
            embedding = getattr(getattr(entry, "response", None), "embedding", None)
            values = getattr(embedding, "values", None)
            if error is not None:
                results.failed(
                    index,
                    int(getattr(error, "code", 0) or 0),
                    str(getattr(error, "message", "") or ""),
                )
            else:
                results.put(index, values)
        return results.checked()

    def _from_file(self, name: str, content: bytes | mmap.mmap, count: int) -> JobResults:
        """The results file, read line by line into one float32 matrix.

        At 3072 dimensions a job's results file is a few hundred MB: each line's values
        are Python floats only until they are copied into their row, and the file is read
        through a memory map. A line without a key is taken to be at its place."""
        results = _Rows(count, self._dimension)
        for number, raw in enumerate(_lines(content), start=1):
            try:
                line = _RESULT_LINE.decode(raw)
                index = number - 1 if line.key is None else int(line.key)
            except (msgspec.DecodeError, ValueError):
                if not raw.strip():  # a blank line
                    continue
                raise RetryableEmbeddingError(
                    f"{name}: line {number} of its results is not a keyed result"
                ) from None
            if not 0 <= index < count or results.has(index):
                raise RetryableEmbeddingError(f"{name}: its results hold key {index} out of place")
            if line.error is not None:
                results.failed(index, line.error.code or 0, line.error.message or "")
            else:
                embedding = line.response.embedding if line.response is not None else None
                results.put(index, embedding.values if embedding is not None else None)
        if results.count != count:
            raise RetryableEmbeddingError(
                f"{name}: its results hold {results.count} lines for {count} texts"
            )
        return results.checked()


class _Rows:
    """A job's results as they are read: rows of one float32 matrix, and lines' errors.

    A line whose vector is missing, of the wrong size, not finite or all zeros fails
    that line alone (code 0), where an online answer would be refused whole: a job's
    lines are independent requests."""

    def __init__(self, count: int, dimension: int) -> None:
        self._dimension = dimension
        self._matrix = np.empty((count, dimension), dtype=np.float32)
        self._got = np.zeros(count, dtype=bool)
        self.errors: dict[int, LineError] = {}

    @property
    def count(self) -> int:
        return int(self._got.sum()) + len(self.errors)

    def has(self, index: int) -> bool:
        return bool(self._got[index]) or index in self.errors

    def failed(self, index: int, code: int, message: str) -> None:
        self.errors[index] = LineError(code, message)

    def put(self, index: int, values: Sequence[float] | None) -> None:
        if not values or len(values) != self._dimension:
            size = len(values) if values else 0
            self.failed(index, 0, f"the result holds {size} values, not {self._dimension}")
            return
        self._matrix[index] = values
        row = self._matrix[index]
        if not np.isfinite(row).all() or not row.any():
            self.failed(index, 0, "the result is not a finite, non-zero vector")
            return
        self._got[index] = True

    def checked(self) -> JobResults:
        positions = np.flatnonzero(self._got)
        if not len(positions):
            return JobResults({}, self.errors)
        # Compacted in place (no second matrix), then checked as an online answer is.
        if len(positions) < len(self._got):
            self._matrix[: len(positions)] = self._matrix[positions]
        rows = self._matrix[: len(positions)]
        checked = checked_vectors(rows, len(positions), self._dimension)
        checked.flags.writeable = False
        return JobResults(dict(zip(positions.tolist(), checked, strict=True)), self.errors)


def _status_of(name: str, job: types.BatchJob) -> JobStatus:
    state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
    message = ""
    if job.error is not None:
        message = " ".join(str(job.error.message or "").split())
    return JobStatus(name, str(state), message)


def _lines(content: bytes | mmap.mmap) -> Iterator[bytes]:
    """The non-empty lines of `content`, one copied at a time (a line is at most tens of
    KB). Copies, not views: a view still held by an error's traceback would keep the
    memory map from closing, and turn a passing error into a BufferError."""
    start = 0
    while start < len(content):
        end = content.find(b"\n", start)
        if end < 0:
            end = len(content)
        if end > start:
            yield content[start:end]
        start = end + 1


def _seconds(moment: datetime | None) -> float | None:
    """A timestamp of the API in seconds since the epoch; one without a zone is UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
