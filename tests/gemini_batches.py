"""The Files and Batch API side of the local Gemini test server: uploads, files and batch jobs.

`tests.gemini_server` routes HTTP requests here. This module keeps what they act on and
renders the JSON resources the google-genai SDK parses; it knows nothing of HTTP (headers,
keys, scripted faults stay in the server) and nothing of how an embedding is computed (the
server hands in the encoder, so a batch vector is byte for byte the online one).

The shapes, as the SDK (3.6) reads them:

- a batch job is a long-running operation, ``{"name": "batches/ID", "metadata": {...},
  "done": true, "error": {...}}``; the SDK reads only ``name`` and ``metadata``: ``state``
  (``BATCH_STATE_*``, which it renames ``JOB_STATE_*``), ``displayName``, ``model``,
  ``createTime``, ``updateTime``, ``endTime`` and ``output``;
- ``output`` is ``{"inlinedResponses": {"inlinedResponses": [{"response": {"embedding":
  {"values": [...]}}} or {"error": {"code": 3, "message": ...}}, ...]}}`` for inline jobs,
  in request order, or ``{"responsesFile": "files/ID"}`` for file jobs;
- a results file has one JSON line per input line, in input order: ``{"key": K,
  "response": {"embedding": {"values": [...]}}}`` or ``{"key": K, "error": {...}}``;
- a list page is ``{"operations": [...], "nextPageToken": T}`` (``{"files": [...], ...}``
  for files), newest first.

A job's clock starts when it is created: it is PENDING for the first half of
`BatchConfig.delay`, RUNNING for the second and then ends as configured. Nothing runs in the
background: the state is worked out whenever a job is read, and its results are computed the
first time it is read after it succeeded.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

#: Encodes ``{"values":[...]}`` for (model, text, dimension): the server's online encoder.
Encoder = Callable[[str, str, int], bytes]
_Item = TypeVar("_Item")

#: The Files API refuses files above 2 GB.
MAX_FILE_BYTES = 2 * 1024**3
#: The chunk size the upload answer advertises (the SDK sends 8 MB chunks regardless).
UPLOAD_CHUNK_GRANULARITY = 8 * 1024 * 1024
#: Files expire 48 hours after their creation.
FILE_LIFETIME = dt.timedelta(hours=48)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"
#: google.rpc.Code numbers: per-request errors and operation errors carry these, not HTTP codes.
GRPC_CODES = {
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}
_FILE_NAME = re.compile(r"^files/[a-z0-9][a-z0-9-]{0,39}$")


class BatchState(enum.StrEnum):
    """A batch job's state as the Gemini API spells it (the SDK reports ``JOB_STATE_*``)."""

    PENDING = "BATCH_STATE_PENDING"
    RUNNING = "BATCH_STATE_RUNNING"
    SUCCEEDED = "BATCH_STATE_SUCCEEDED"
    FAILED = "BATCH_STATE_FAILED"
    CANCELLED = "BATCH_STATE_CANCELLED"
    EXPIRED = "BATCH_STATE_EXPIRED"

    @property
    def is_final(self) -> bool:
        return self not in (BatchState.PENDING, BatchState.RUNNING)


#: The states a job can be configured to end in (CANCELLED takes a cancel request).
END_STATES = (BatchState.SUCCEEDED, BatchState.FAILED, BatchState.EXPIRED)
#: The operation error a job that did not succeed carries: (google.rpc.Code name, message).
_END_ERRORS = {
    BatchState.FAILED: ("INTERNAL", "The batch failed (the test server was told to fail it)."),
    BatchState.EXPIRED: ("DEADLINE_EXCEEDED", "The batch expired before it could complete."),
    BatchState.CANCELLED: ("CANCELLED", "The batch was cancelled."),
}


@dataclass(frozen=True)
class BatchConfig:
    """How batch jobs behave. A job keeps the config it was created under to its end."""

    #: Seconds from creation until a job ends: PENDING for the first half, RUNNING after.
    delay: float = 0.0
    #: The state every job ends in, unless `end_states` or a cancel request says otherwise.
    end_state: BatchState = BatchState.SUCCEEDED
    #: The n-th job created (from 0) ends in end_states[n]; jobs past its end use `end_state`.
    end_states: tuple[BatchState, ...] = ()
    #: A request whose text contains this gets an error, not an embedding, in the results.
    error_marker: str | None = None
    #: Requests at these positions in their job (0 = the first) get an error too.
    error_positions: frozenset[int] = frozenset()
    #: The google.rpc.Code name of those errors (RESOURCE_EXHAUSTED, INTERNAL... for retries).
    error_status: str = "INTERNAL"

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("the batch delay must not be negative")
        for state in (self.end_state, *self.end_states):
            if state not in END_STATES:
                raise ValueError(f"a job can end in {', '.join(END_STATES)}, not {state}")
        if any(position < 0 for position in self.error_positions):
            raise ValueError("error positions count from 0")
        if self.error_marker == "":
            raise ValueError("an empty error marker would be in every text; use None")
        if self.error_status not in GRPC_CODES:
            raise ValueError(f"error_status must be one of {', '.join(GRPC_CODES)}")

    def end_state_of(self, index: int) -> BatchState:
        """How the `index`-th job created on the server ends, unless cancelled."""
        return self.end_states[index] if index < len(self.end_states) else self.end_state


class ApiError(Exception):
    """A request the API refuses: the server answers `http_status` with Google's error body."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        #: The google.rpc.Code name, the error body's "status".
        self.status = status
        self.message = message

    @property
    def outcome(self) -> str:
        """What the server records as the arrival's outcome: "not_found", "invalid_argument"..."""
        return self.status.lower()


def _not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} does not exist (or was deleted).")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One embedding request of a batch job: an inline request or one line of its input file."""

    #: The line's "key" (file jobs); inline requests have none, their position is their key.
    key: str | None
    text: str
    dimension: int
    #: Why the request cannot be served (a malformed line, a dimension out of range): it
    #: gets an INVALID_ARGUMENT error in the results. None for a well-formed request.
    problem: str | None = None


@dataclass(slots=True)
class SubmittedJob:
    """One batch job as the server received it, and what has happened to it since."""

    name: str  # "batches/ID"
    model: str  # bare, as in the request path: "gemini-embedding-001"
    #: "inline", or the input file's name ("files/ID")
    source: str
    display_name: str | None
    keys: tuple[str | None, ...]
    texts: tuple[str, ...]
    dimensions: tuple[int, ...]
    api_key: str | None
    #: time.monotonic() at creation
    created: float
    #: The state the job ends in unless it is cancelled first.
    end_state: BatchState
    #: time.monotonic() of the cancel request that stopped it; None if it was not stopped.
    cancelled: float | None = None
    deleted: bool = False
    #: The results file ("files/ID") once written: a file job read after it succeeded.
    results_file: str | None = None


@dataclass(slots=True)
class Upload:
    """One resumable upload as the server received it."""

    #: The file it becomes ("files/ID"); chosen when the upload starts.
    name: str
    display_name: str | None
    mime_type: str
    #: The size announced by the start request, X-Goog-Upload-Header-Content-Length.
    declared_size: int
    api_key: str | None
    received: int = 0
    chunks: int = 0
    #: True once the last chunk was accepted and the file created.
    finalized: bool = False
    #: The bytes, once finalized (empty until then).
    content: bytes = b""


@dataclass(slots=True)
class _File:
    name: str
    display_name: str | None
    mime_type: str
    content: bytes
    created: float  # time.time()
    #: "UPLOADED" (files.upload) or "GENERATED" (a batch job's results)
    source: str
    serial: int  # the order of creation, for list pages


@dataclass(slots=True)
class _Session:
    upload: Upload
    serial: int
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class _Job:
    record: SubmittedJob
    requests: tuple[BatchRequest, ...]
    config: BatchConfig
    created_wall: float  # time.time() at creation, for the resource's timestamps
    #: Per request: (google.rpc.Code name, message) of the error it gets, or None.
    errors: tuple[tuple[str, str] | None, ...]
    serial: int  # the order of creation, for list pages
    #: Its results: the rendered inline output, or the results file's name, once computed.
    output: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, now: float) -> BatchState:
        if self.record.cancelled is not None:
            return BatchState.CANCELLED
        elapsed = now - self.record.created
        if elapsed >= self.config.delay:
            return self.record.end_state
        return BatchState.RUNNING if elapsed >= self.config.delay / 2 else BatchState.PENDING

    def ended(self) -> float:
        """time.monotonic() at which it ended, or will end."""
        if self.record.cancelled is not None:
            return self.record.cancelled
        return self.record.created + self.config.delay

    def wall(self, monotonic: float) -> float:
        return self.created_wall + (monotonic - self.record.created)


def _dumps(document: Any) -> str:
    # Compact, like the fragments spliced in next to it.
    return json.dumps(document, separators=(",", ":"))


def _timestamp(seconds: float) -> str:
    """A google.protobuf.Timestamp in JSON form: RFC 3339, UTC, microseconds."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _status(code_name: str, message: str) -> dict[str, Any]:
    # No "details": the SDK types them as strings and would refuse Google's detail objects.
    return {"code": GRPC_CODES[code_name], "message": message}


def _with_field(document: bytes, name: str, value: bytes) -> bytes:
    """Appends ``"name": value`` to a JSON object whose value is already encoded bytes.

    The vectors arrive as encoded fragments; splicing them in spares decoding and
    re-encoding megabytes of numbers, and keeps them byte for byte the online ones.
    """
    separator = b"," if document != b"{}" else b""
    return document[:-1] + separator + _dumps(name).encode() + b":" + value + b"}"


def _page(
    items: Iterable[tuple[int, _Item]], page_size: int | None, page_token: str | None
) -> tuple[list[_Item], str | None]:
    """One page of (serial, item) pairs, newest (highest serial) first, and the next token.

    The token is the serial of the page's last item: the next page starts below it, so
    items created or deleted meanwhile shift no page (new ones come before the first).
    """
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if size < 0:
        raise _invalid(f"page_size must not be negative, not {size}")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    below = None
    if page_token:
        try:
            below = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except ValueError:
            raise _invalid(f"page_token {page_token!r} is not one this server gave") from None
    ordered = sorted(items, key=lambda pair: pair[0], reverse=True)
    rest = [pair for pair in ordered if below is None or pair[0] < below]
    page = rest[:size]
    if len(rest) <= size:
        return [item for _, item in page], None
    token = base64.urlsafe_b64encode(str(page[-1][0]).encode()).decode()
    return [item for _, item in page], token


class BatchService:
    """The files and batch jobs of one server, thread-safe.

    `now` arguments are time.monotonic() readings (the server passes each request's arrival
    time), so a job's state depends on when its request arrived, not on when it is answered.
    """

    def __init__(self, encode: Encoder) -> None:
        self._encode = encode
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._sessions: dict[str, _Session] = {}
        self._uploads: list[Upload] = []
        self._jobs: dict[str, _Job] = {}  # by name, in order of creation
        self._records: list[SubmittedJob] = []  # deleted ones too
        self._serial = 0  # names are drawn from it

    # --- records ---------------------------------------------------------------------

    def submitted_jobs(self) -> list[SubmittedJob]:
        with self._lock:
            return [replace(record) for record in self._records]

    def uploads(self) -> list[Upload]:
        with self._lock:
            return [replace(upload) for upload in self._uploads]

    # --- files -----------------------------------------------------------------------

    def start_upload(
        self,
        *,
        name: str | None,
        display_name: str | None,
        mime_type: str,
        size: int,
        api_key: str | None,
    ) -> str:
        """Opens a resumable upload; returns its id, the credential of its upload URL."""
        if not 0 <= size <= MAX_FILE_BYTES:
            raise _invalid(f"a file must have between 0 and {MAX_FILE_BYTES} bytes, not {size}")
        with self._lock:
            if name is None:
                name = self._fresh("files/", self._files.keys() | self._pending_names())
            elif not _FILE_NAME.match(name):
                raise _invalid(
                    f"{name!r} is not a valid file name: 'files/' and up to 40 lowercase"
                    " letters, digits or dashes"
                )
            elif name in self._files or name in self._pending_names():
                raise ApiError(409, "ALREADY_EXISTS", f"{name} already exists.")
            upload = Upload(name, display_name, mime_type, size, api_key)
            upload_id = self._fresh("", self._sessions.keys())
            # Read right after a `_fresh`, which always moves it on: no two share a serial.
            self._sessions[upload_id] = _Session(upload, self._serial)
            self._uploads.append(upload)
        return upload_id

    def received(self, upload_id: str) -> int:
        """Bytes received so far by an open upload (what a "query" command answers)."""
        with self._lock:
            return self._session(upload_id).upload.received

    def receive_chunk(
        self, upload_id: str, *, offset: int, data: bytes, finalize: bool, now_wall: float
    ) -> _File | None:
        """Takes one chunk; returns the new file when `finalize` completes the upload.

        A chunk at the wrong offset, more bytes than announced or a finalize short of them
        end the upload with an error, as Google's upload server does.
        """
        with self._lock:
            session = self._session(upload_id)
            upload = session.upload
            problem = None
            if offset != upload.received:
                problem = f"the chunk starts at {offset}, but {upload.received} bytes were received"
            elif upload.received + len(data) > upload.declared_size:
                problem = f"more than the {upload.declared_size} bytes announced"
            elif finalize and upload.received + len(data) != upload.declared_size:
                received = upload.received + len(data)
                problem = (
                    f"finalized after {received} of the {upload.declared_size} bytes announced"
                )
            if problem is not None:
                del self._sessions[upload_id]
                raise _invalid(f"Upload {upload.name} failed: {problem}.")
            session.data += data
            upload.received += len(data)
            upload.chunks += 1
            if not finalize:
                return None
            del self._sessions[upload_id]
            upload.finalized = True
            upload.content = bytes(session.data)
            stored = _File(
                upload.name,
                upload.display_name,
                upload.mime_type,
                upload.content,
                now_wall,
                "UPLOADED",
                session.serial,
            )
            self._files[stored.name] = stored
            return stored

    def file(self, name: str) -> _File:
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"You do not have permission to access the File {name.removeprefix('files/')}"
                " or it may not exist.",
            )
        return stored

    def download(self, name: str) -> _File:
        """A generated file (a job's results); uploaded files cannot be downloaded."""
        stored = self.file(name)
        if stored.source != "GENERATED":
            raise _invalid(f"Only generated files can be downloaded; {name} was uploaded.")
        return stored

    def delete_file(self, name: str) -> None:
        self.file(name)  # the same error as a get
        with self._lock:
            self._files.pop(name, None)

    def file_page(
        self, page_size: int | None, page_token: str | None, base_url: str
    ) -> dict[str, Any]:
        with self._lock:
            files = [(stored.serial, stored) for stored in self._files.values()]
        page, token = _page(files, page_size, page_token)
        document: dict[str, Any] = {"files": [file_resource(stored, base_url) for stored in page]}
        if token is not None:
            document["nextPageToken"] = token
        return document

    # --- batch jobs ------------------------------------------------------------------

    def create_job(
        self,
        *,
        model: str,
        source: str,
        display_name: str | None,
        requests: Sequence[BatchRequest],
        api_key: str | None,
        config: BatchConfig,
        now: float,
    ) -> bytes:
        """Creates a job; answers its operation as just created (PENDING, whatever the delay)."""
        if not requests:
            raise _invalid("The batch has no requests: there is nothing to embed.")
        errors = tuple(
            self._error_of(index, request, config) for index, request in enumerate(requests)
        )
        with self._lock:
            name = self._fresh("batches/", self._jobs.keys())
            record = SubmittedJob(
                name=name,
                model=model,
                source=source,
                display_name=display_name,
                keys=tuple(request.key for request in requests),
                texts=tuple(request.text for request in requests),
                dimensions=tuple(request.dimension for request in requests),
                api_key=api_key,
                created=now,
                end_state=config.end_state_of(len(self._records)),
            )
            job = _Job(record, tuple(requests), config, time.time(), errors, self._serial)
            self._jobs[name] = job
            self._records.append(record)
        return self._operation(job, BatchState.PENDING)

    def job(self, name: str, now: float) -> bytes:
        return self._operation(self._job(name), None, now)

    def job_page(self, page_size: int | None, page_token: str | None, now: float) -> bytes:
        with self._lock:
            jobs = [(job.serial, job) for job in self._jobs.values()]
        page, token = _page(jobs, page_size, page_token)
        operations = b",".join(self._operation(job, None, now) for job in page)
        document = b'{"operations":[' + operations + b"]}"
        if token is not None:
            document = _with_field(document, "nextPageToken", _dumps(token).encode())
        return document

    def cancel_job(self, name: str, now: float) -> None:
        """Stops a pending or running job; a job that has already ended is left as it is."""
        job = self._job(name)
        with self._lock:
            if not job.state(now).is_final:
                job.record.cancelled = now

    def delete_job(self, name: str) -> None:
        job = self._job(name)
        with self._lock:
            self._jobs.pop(name, None)
            job.record.deleted = True

    # --- inside ----------------------------------------------------------------------

    def _pending_names(self) -> set[str]:
        return {session.upload.name for session in self._sessions.values()}

    def _fresh(self, prefix: str, taken: Iterable[str]) -> str:
        """An unused opaque name, drawn from a serial so that runs repeat. Under the lock."""
        taken = set(taken)
        while True:
            self._serial += 1
            digest = hashlib.blake2b(f"{prefix}{self._serial}".encode(), digest_size=6)
            name = prefix + digest.hexdigest()
            if name not in taken:
                return name

    def _session(self, upload_id: str) -> _Session:
        session = self._sessions.get(upload_id)
        if session is None:
            raise _not_found(f"Upload {upload_id!r}")
        return session

    def _job(self, name: str) -> _Job:
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            raise _not_found(f"Batch {name}")
        return job

    @staticmethod
    def _error_of(index: int, request: BatchRequest, config: BatchConfig) -> tuple[str, str] | None:
        if request.problem is not None:
            return ("INVALID_ARGUMENT", request.problem)
        if config.error_marker is not None and config.error_marker in request.text:
            message = f"Request {index} failed: its text holds the marker {config.error_marker!r}."
            return (config.error_status, message)
        if index in config.error_positions:
            return (config.error_status, f"Request {index} failed: its position was set to fail.")
        return None

    def _output(self, job: _Job) -> bytes:
        """The job's ``output`` (computed once, outside the service lock: it may take long)."""
        with job.lock:
            if job.output is None:
                if job.record.source == "inline":
                    job.output = self._inline_output(job)
                else:
                    job.output = self._results_file(job)
            return job.output

    def _response(self, job: _Job, index: int) -> tuple[str, bytes]:
        """("response" or "error", its encoded value) for request `index`."""
        error = job.errors[index]
        if error is not None:
            return "error", _dumps(_status(*error)).encode()
        request = job.requests[index]
        return "response", b'{"embedding":' + self._encode(
            job.record.model, request.text, request.dimension
        ) + b"}"

    def _inline_output(self, job: _Job) -> bytes:
        items = []
        for index in range(len(job.requests)):
            kind, value = self._response(job, index)
            items.append(_with_field(b"{}", kind, value))
        return b'{"inlinedResponses":{"inlinedResponses":[' + b",".join(items) + b"]}}"

    def _results_file(self, job: _Job) -> bytes:
        lines = []
        for index, request in enumerate(job.requests):
            kind, value = self._response(job, index)
            line = b"{}" if request.key is None else _dumps({"key": request.key}).encode()
            lines.append(_with_field(line, kind, value) + b"\n")
        with self._lock:
            name = self._fresh("files/batch-", self._files.keys() | self._pending_names())
            self._files[name] = _File(
                name,
                f"Results of {job.record.name}",
                "application/jsonl",
                b"".join(lines),
                job.wall(job.ended()),
                "GENERATED",
                self._serial,
            )
            job.record.results_file = name
        return _dumps({"responsesFile": name}).encode()

    def _operation(self, job: _Job, state: BatchState | None, now: float = 0.0) -> bytes:
        """The job as the operation the API answers; `state` None: its state at `now`."""
        state = job.state(now) if state is None else state
        record = job.record
        updated = job.record.created
        if state is BatchState.RUNNING:
            updated = record.created + job.config.delay / 2
        elif state.is_final:
            updated = job.ended()
        metadata: dict[str, Any] = {"@type": _BATCH_TYPE, "name": record.name}
        if record.display_name is not None:
            metadata["displayName"] = record.display_name
        metadata["model"] = f"models/{record.model}"
        if record.source != "inline":
            metadata["inputConfig"] = {"fileName": record.source}
        metadata["createTime"] = _timestamp(job.created_wall)
        metadata["updateTime"] = _timestamp(job.wall(updated))
        if state.is_final:
            metadata["endTime"] = _timestamp(job.wall(updated))
        metadata["batchStats"] = self._stats(job, state)
        metadata["state"] = state.value
        operation: dict[str, Any] = {"name": record.name}
        if state.is_final:
            operation["done"] = True
        if state in _END_ERRORS:
            operation["error"] = _status(*_END_ERRORS[state])
        encoded = _dumps(metadata).encode()
        if state is BatchState.SUCCEEDED:
            encoded = _with_field(encoded, "output", self._output(job))
        return _with_field(_dumps(operation).encode(), "metadata", encoded)

    @staticmethod
    def _stats(job: _Job, state: BatchState) -> dict[str, str]:
        # int64 values are JSON strings; zero counts are left out, as proto3 JSON does.
        total = len(job.requests)
        failed = sum(error is not None for error in job.errors)
        counts = {"requestCount": total}
        if state is BatchState.SUCCEEDED:
            counts |= {"successfulRequestCount": total - failed, "failedRequestCount": failed}
        else:
            counts["pendingRequestCount"] = total
        return {name: str(count) for name, count in counts.items() if count}


def file_resource(stored: _File, base_url: str) -> dict[str, Any]:
    """A file's metadata as files.get answers it (file URIs use v1beta, as Google's do)."""
    created = _timestamp(stored.created)
    resource: dict[str, Any] = {"name": stored.name}
    if stored.display_name is not None:
        resource["displayName"] = stored.display_name
    resource |= {
        "mimeType": stored.mime_type,
        "sizeBytes": str(len(stored.content)),
        "createTime": created,
        "updateTime": created,
        "expirationTime": _timestamp(stored.created + FILE_LIFETIME.total_seconds()),
        "sha256Hash": base64.b64encode(hashlib.sha256(stored.content).digest()).decode(),
        "uri": f"{base_url}/v1beta/{stored.name}",
        "state": "ACTIVE",
        "source": stored.source,
    }
    if stored.source == "GENERATED":
        resource["downloadUri"] = f"{base_url}/download/v1beta/{stored.name}:download?alt=media"
    return resource
