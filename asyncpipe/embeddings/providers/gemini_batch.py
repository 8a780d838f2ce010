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
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
FINAL_STATES = frozenset(
    {SUCCEEDED, "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
#: google.rpc.Code numbers of a line's error that no retry can fix: the text itself is
#: refused (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION,
#: OUT_OF_RANGE, UNIMPLEMENTED). Any other code is passing (RESOURCE_EXHAUSTED, INTERNAL...).
PERMANENT_CODES = frozenset({3, 5, 7, 9, 11, 12})
_JSONL = "application/jsonl"
#: A value of a result in JSON: "-0.012345678," and a little.
_RESULT_BYTES_PER_VALUE = 11
#: The largest results file a job is sized for: 7,900 texts at 3072 dimensions, and the
#: run's memory holds one such file (and its float32 matrix, a third of it) at a time.
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


class _Embedding(msgspec.Struct, gc=False):
    values: list[float]


class _Response(msgspec.Struct, gc=False):
    embedding: _Embedding


class _Error(msgspec.Struct, gc=False):
    code: int = 0
    message: str = ""


class _ResultLine(msgspec.Struct, gc=False):
    key: str | None = None
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
        self._config = types.EmbedContentConfig(
            task_type=settings.task_type, output_dimensionality=settings.embedding_dimension
        )

    @property
    def texts_per_job(self) -> int:
        """The most texts a job may hold for its results file to stay within
        `MAX_RESULT_BYTES`: it is downloaded whole (the SDK returns bytes), then read."""
        return max(1, MAX_RESULT_BYTES // (_RESULT_BYTES_PER_VALUE * self._dimension + 60))

    def text_bytes(self, text: str) -> int:
        """About what one text adds to an inline job, in bytes of JSON: its request, and
        its result, which comes back inside every poll of the succeeded job and is parsed
        by the SDK into Python objects (about 11 bytes a value, 35 of memory)."""
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
                uploaded = await self._client.aio.files.upload(
                    file=io.BytesIO(self._input_file(texts)),
                    # No mime type is guessed for .jsonl on every system: it is named.
                    config=types.UploadFileConfig(mime_type=_JSONL, display_name=display_name),
                )
                source = types.EmbeddingsBatchJobSource(file_name=uploaded.name)
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

    async def open_jobs_since(self, since: float, prefix: str) -> dict[str, str]:
        """Display name -> name of the jobs not ended or succeeded, created at `since`
        (seconds since the epoch) or later, whose display name starts with `prefix`.

        The list comes newest first; it is read until a job older than `since`."""
        found: dict[str, str] = {}
        with mapped_sdk_errors():
            pager = await self._client.aio.batches.list(config={"page_size": 100})
            async for job in pager:
                created = job.create_time.timestamp() if job.create_time is not None else None
                if created is not None and created < since:
                    break
                status = _status_of(job.name or "", job)
                usable = not status.ended or status.state == SUCCEEDED
                label = job.display_name or ""
                if job.name and usable and label.startswith(prefix) and label not in found:
                    found[label] = job.name
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
                content = await self._client.aio.files.download(file=destination.file_name)
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
        values: dict[int, Any] = {}
        errors: dict[int, LineError] = {}
        for index, entry in enumerate(entries):
            error = getattr(entry, "error", None)
            embedding = getattr(getattr(entry, "response", None), "embedding", None)
            if error is not None or embedding is None:
                errors[index] = LineError(
                    int(getattr(error, "code", 0) or 0), str(getattr(error, "message", "") or "")
                )
            else:
                values[index] = embedding.values
        return JobResults(self._checked(values), errors)

    def _from_file(self, name: str, content: bytes, count: int) -> JobResults:
        """The results file, read line by line into one float32 matrix.

        At 3072 dimensions a job of 50,000 texts is a file of about 1.7 GB: each line's
        values are Python floats only until they are copied into their row, so the
        memory is the file and the matrix, not the 35 bytes a value of a list of floats.
        A line without a key is taken to be at its place."""
        matrix = np.empty((count, self._dimension), dtype=np.float32)
        got = np.zeros(count, dtype=bool)
        errors: dict[int, LineError] = {}
        for number, raw in enumerate(_lines(content), start=1):
            try:
                line = _RESULT_LINE.decode(raw)
                index = number - 1 if line.key is None else int(line.key)
            except (msgspec.DecodeError, ValueError):
                if not bytes(raw).strip():  # a blank line: copied only to be sure of it
                    continue
                raise RetryableEmbeddingError(
                    f"{name}: line {number} of its results is not a keyed result"
                ) from None
            if not 0 <= index < count or got[index] or index in errors:
                raise RetryableEmbeddingError(f"{name}: its results hold key {index} out of place")
            if line.response is not None and line.error is None:
                values = line.response.embedding.values
                if len(values) != self._dimension:
                    raise RetryableEmbeddingError(
                        f"{name}: line {number} holds {len(values)} values, "
                        f"expected {self._dimension}"
                    )
                matrix[index] = values
                got[index] = True
            else:
                error = line.error or _Error()
                errors[index] = LineError(error.code, error.message)
        if int(got.sum()) + len(errors) != count:
            raise RetryableEmbeddingError(
                f"{name}: its results hold {int(got.sum()) + len(errors)} lines for {count} texts"
            )
        positions = np.flatnonzero(got)
        if not len(positions):
            return JobResults({}, errors)
        rows = matrix if len(positions) == count else matrix[positions]
        checked = checked_vectors(rows, len(positions), self._dimension)
        checked.flags.writeable = False
        return JobResults(dict(zip(positions.tolist(), checked, strict=True)), errors)

    def _checked(self, values: dict[int, Any]) -> dict[int, np.ndarray]:
        if not values:
            return {}
        positions = sorted(values)
        matrix = checked_vectors([values[i] for i in positions], len(positions), self._dimension)
        matrix.flags.writeable = False
        return dict(zip(positions, matrix, strict=True))


def _status_of(name: str, job: types.BatchJob) -> JobStatus:
    state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
    message = ""
    if job.error is not None:
        message = " ".join(str(job.error.message or "").split())
    return JobStatus(name, str(state), message)


def _lines(content: bytes) -> Iterator[memoryview]:
    """The non-empty lines of `content`, as views: no line is copied."""
    view = memoryview(content)
    start = 0
    while start < len(content):
        end = content.find(b"\n", start)
        if end < 0:
            end = len(content)
        if end > start:
            yield view[start:end]
        start = end + 1
