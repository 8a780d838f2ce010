"""A local Gemini-compatible embedding server, for tests and benchmarks of the Gemini provider.

It answers the two Gemini API (not Vertex) embedding methods the `google-genai` SDK calls:

- ``POST /{version}/models/{model}:batchEmbedContents`` with
  ``{"requests": [{"model": "models/{model}", "content": {"parts": [{"text": ...}],
  "role": "user"}, "taskType": ..., "outputDimensionality": D}, ...]}``,
  answered ``{"embeddings": [{"values": [...]}, ...]}``;
- ``POST /{version}/models/{model}:embedContent`` with ``{"content": ..., "taskType": ...,
  "outputDimensionality": D}``, answered ``{"embedding": {"values": [...]}}``.

The SDK sends the key in the ``x-goog-api-key`` header (``?key=`` is accepted too) and uses
API version ``v1`` by default (``v1beta`` when ``GOOGLE_GENAI_API_VERSION=beta``); any version
segment is accepted. Errors use Google's shape, ``{"error": {"code", "message", "status",
"details"}}``, which the SDK turns into ``google.genai.errors.ClientError`` (4xx) or
``ServerError`` (5xx).

It also answers the Files and Batch API calls of ``client.aio.files`` and
``client.aio.batches`` (the shapes and job life cycle are in `tests.gemini_batches`):

- ``POST /upload/{version}/files`` with ``X-Goog-Upload-Protocol: resumable``,
  ``X-Goog-Upload-Command: start``, ``X-Goog-Upload-Header-Content-Length`` and
  ``-Content-Type`` and ``{"file": {"display_name": ...}}``, answered with an empty body and
  an ``X-Goog-Upload-URL`` header (``...?upload_id=ID``); chunks are POSTed there with
  ``X-Goog-Upload-Command: upload`` (``upload, finalize`` for the last) and
  ``X-Goog-Upload-Offset``, and carry no key: the upload id is their credential. Every chunk
  answer has an ``X-Goog-Upload-Status`` (``active``, or ``final`` with ``{"file": {...}}``);
- ``GET /{version}/files/{id}``, ``GET /{version}/files``, ``DELETE /{version}/files/{id}``
  and ``GET /{version}/files/{id}:download?alt=media`` (generated files only: results);
- ``POST /{version}/models/{model}:asyncBatchEmbedContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request": {"content", "taskType",
  "outputDimensionality"}}, ...]}} or {"file_name": "files/ID"}}}``, answered with the job's
  operation, ``{"name": "batches/ID", "metadata": {"state": "BATCH_STATE_PENDING", ...}}``;
- ``GET /{version}/batches/{id}``, ``GET /{version}/batches?pageSize=&pageToken=``,
  ``POST /{version}/batches/{id}:cancel`` and ``DELETE /{version}/batches/{id}``.

A batch vector is byte for byte the online one: both come from the same encoder. Scripted
answers (`GeminiTestServer.fail_next`) and the latency apply to these calls too; the random
rates and the quota are about embedding requests and leave them alone. Jobs and uploads are
recorded (`GeminiTestServer.submitted_jobs`, `GeminiTestServer.uploads`) besides arrivals.

Embeddings are deterministic: a vector depends only on (model, text). The full 3072-value
vector has unit length; a smaller ``outputDimensionality`` gets its prefix, not renormalised,
as the real API does. `expected_embedding` gives exactly the values a client receives.

Misbehaviour is configurable (`ServerConfig`) or scripted (`GeminiTestServer.fail_next`):
latency, a key check, the 100-texts limit, a rolling-window quota answering 429 with a
``google.rpc.RetryInfo`` detail and a ``Retry-After`` header, a daily quota answering 429
with a per-day ``google.rpc.QuotaFailure`` (and, as Google does, a RetryInfo of under a
minute) until `GeminiTestServer.new_day`, random 500/503 answers,
dropped connections, wrong dimensions, wrong vector counts and non-JSON bodies; for batch
jobs (`BatchConfig`): their delay, jobs that fail or expire, and per-request errors.

Every arrival is recorded (`Arrival`) together with the peak number of requests in flight.

Two ways to run it:

- in-process: ``with GeminiTestServer(ServerConfig(latency=0.1)) as server: server.base_url``;
- standalone: ``python -m tests.gemini_server --port 0 --latency 0.3 --stats-file s.json``
  prints its base URL as the first line of stdout, serves until SIGTERM or SIGINT, writes
  its statistics to the stats file and exits 0.

It is not a model: the vectors carry no meaning, so similarities between texts are noise.
It listens on 127.0.0.1 only. Standard library and numpy only.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np

from tests.gemini_batches import (
    END_STATES,
    GRPC_CODES,
    UPLOAD_CHUNK_GRANULARITY,
    ApiError,
    BatchConfig,
    BatchRequest,
    BatchService,
    BatchState,
    SubmittedJob,
    Upload,
    file_resource,
)

HOST = "127.0.0.1"
#: The key `ServerConfig` accepts unless told otherwise.
DEFAULT_API_KEY = "test-key"
#: gemini-embedding-001's full size; only vectors of this size come back normalised.
FULL_DIMENSION = 3072
#: Largest request body read; bigger ones are refused without reading them.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Idle keep-alive connections are closed after this many seconds.
CONNECTION_IDLE_TIMEOUT = 60.0

_VERSION = r"(?:(?P<version>v\d+[a-z0-9]*)/)?"
_PATH = re.compile(
    rf"^/{_VERSION}models/(?P<model>[^/:]+)"
    r":(?P<method>batchEmbedContents|embedContent|asyncBatchEmbedContent)$"
)
#: The methods answered at once with vectors; the others go to the `BatchService`.
_ONLINE_METHODS = frozenset({"batchEmbedContents", "embedContent"})
#: (HTTP method, path, API method) of the Files and Batch API; `resource` is the id.
_ROUTES = tuple(
    (verb, re.compile(pattern), method)
    for verb, pattern, method in (
        ("POST", rf"^/upload/{_VERSION}files$", "files.create"),
        ("GET", rf"^/{_VERSION}files$", "files.list"),
        ("GET", rf"^/{_VERSION}files/(?P<resource>[^/:]+)$", "files.get"),
        (
            "GET",
            rf"^/(?:download/)?{_VERSION}files/(?P<resource>[^/:]+):download$",
            "files.download",
        ),
        ("DELETE", rf"^/{_VERSION}files/(?P<resource>[^/:]+)$", "files.delete"),
        ("GET", rf"^/{_VERSION}batches$", "batches.list"),
        ("GET", rf"^/{_VERSION}batches/(?P<resource>[^/:]+)$", "batches.get"),
        ("POST", rf"^/{_VERSION}batches/(?P<resource>[^/:]+):cancel$", "batches.cancel"),
        ("DELETE", rf"^/{_VERSION}batches/(?P<resource>[^/:]+)$", "batches.delete"),
    )
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RATE_FIELDS = (
    "drop_rate",
    "server_error_rate",
    "unavailable_rate",
    "wrong_dimension_rate",
    "wrong_count_rate",
    "garbage_rate",
    "wrong_shape_rate",
)
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_SERVICE = "generativelanguage.googleapis.com"
#: Values are written with this many decimals (and |value| < 1, true of any unit vector).
_DECIMALS = 10
_SCALE = 10.0**_DECIMALS
#: The five ASCII digits of every number below 100000 (500 KB): a table lookup formats
#: ten digits as two halves, far faster than integer division per digit.
_FIVE_DIGITS = np.asarray(
    np.arange(100_000)[:, None] // 10 ** np.arange(4, -1, -1) % 10 + ord("0"), dtype=np.uint8
)


class Fault(enum.StrEnum):
    """Answers that are not an HTTP error status."""

    #: Close the connection with a TCP reset and no answer at all.
    DROP = "drop"
    #: 200 with a body that is not JSON.
    GARBAGE = "garbage"
    #: 200 with vectors one value shorter than asked for.
    WRONG_DIMENSION = "wrong_dimension"
    #: 200 with one vector fewer than texts sent.
    WRONG_COUNT = "wrong_count"
    #: 200 with valid JSON of another shape: Vertex AI's `{"predictions": [...]}`, no
    #: "embeddings" key (what a gateway routing to the wrong API might send).
    WRONG_SHAPE = "wrong_shape"


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves. Rates are fractions of requests, drawn from a `seed`-ed RNG."""

    port: int = 0
    #: Accepted keys; None accepts any non-empty key.
    valid_keys: frozenset[str] | None = frozenset({DEFAULT_API_KEY})
    #: Status for a wrong key: 400 INVALID_ARGUMENT/API_KEY_INVALID is what Google sends.
    invalid_key_status: int = 400
    #: Status for no key at all: Google sends 403 PERMISSION_DENIED ("unregistered callers").
    missing_key_status: int = 403
    #: Model names served (without "models/"); None serves any name. Others get 404.
    models: frozenset[str] | None = None
    max_texts_per_request: int = 100
    max_dimension: int = FULL_DIMENSION
    default_dimension: int = FULL_DIMENSION
    #: Seconds waited before every answer, plus uniform(0, latency_jitter).
    latency: float = 0.0
    latency_jitter: float = 0.0
    #: At most this many requests admitted per rolling `quota_window` seconds; None: no quota.
    quota_requests: int | None = None
    quota_window: float = 60.0
    #: The RetryInfo delay sent with a quota 429; None: until the oldest admission leaves.
    quota_retry_delay: float | None = None
    #: At most this many embedding requests admitted "per day", that is until
    #: `GeminiTestServer.new_day()`; then 429 with a per-day quota violation. None: no limit.
    daily_quota_requests: int | None = None
    #: The RetryInfo delay of a per-day 429. Google sends one of under a minute even then:
    #: a client that waits it out and retries only collects more 429s.
    daily_quota_retry_delay: float = 59.0
    retry_after_header: bool = True
    drop_rate: float = 0.0
    server_error_rate: float = 0.0
    unavailable_rate: float = 0.0
    wrong_dimension_rate: float = 0.0
    wrong_count_rate: float = 0.0
    garbage_rate: float = 0.0
    wrong_shape_rate: float = 0.0
    seed: int = 0
    #: Keep the texts of each arrival (for `texts_requested`); off saves memory in long runs.
    record_texts: bool = True
    #: Budget of the cache of encoded vectors, in bytes (a 3072-value vector is ~43 KB).
    fragment_cache_bytes: int = 256 * 1024 * 1024
    #: How batch jobs (asyncBatchEmbedContent) behave: delay, how they end, per-request errors.
    batch: BatchConfig = field(default_factory=BatchConfig)

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value}")
        if sum(getattr(self, name) for name in _RATE_FIELDS) > 1.0:
            raise ValueError("the failure rates add up to more than 1")
        for name in ("invalid_key_status", "missing_key_status"):
            if getattr(self, name) not in (400, 401, 403):
                raise ValueError(f"{name} must be 400, 401 or 403")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency and latency_jitter must not be negative")
        if self.quota_requests is not None and self.quota_requests < 1:
            raise ValueError("quota_requests must be at least 1")
        if self.quota_window <= 0:
            raise ValueError("quota_window must be positive")
        if self.quota_retry_delay is not None and self.quota_retry_delay < 0:
            raise ValueError("quota_retry_delay must not be negative")
        if self.daily_quota_requests is not None and self.daily_quota_requests < 0:
            raise ValueError("daily_quota_requests must not be negative")
        if self.daily_quota_retry_delay < 0:
            raise ValueError("daily_quota_retry_delay must not be negative")
        if not 1 <= self.default_dimension <= self.max_dimension <= FULL_DIMENSION:
            raise ValueError(f"need 1 <= default_dimension <= max_dimension <= {FULL_DIMENSION}")
        if self.max_texts_per_request < 1:
            raise ValueError("max_texts_per_request must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within [0, 65535]")


@dataclass(slots=True)
class Arrival:
    """One request as the server saw it. `status` is None when no HTTP answer was sent."""

    #: time.monotonic() when its headers had been read (CLOCK_MONOTONIC on Linux, so a
    #: benchmark in another process can compare it with its own clock).
    time: float
    path: str
    model: str | None
    text_count: int
    texts: tuple[str, ...]
    api_key: str | None
    dimension: int | None = None
    status: int | None = None
    #: "pending" until answered, then "ok", a `Fault` value, "scripted", "bad_key",
    #: "missing_key", "not_found", "invalid_argument", "too_many_texts", "quota",
    #: "daily_quota", "server_error", "unavailable", "shutdown" or "client_gone"; the Files and Batch
    #: API add "permission_denied" and "already_exists".
    outcome: str = "pending"
    #: GET, POST or DELETE: the Files and Batch API tell apart a get from a delete by it.
    http_method: str = "POST"
    #: The API method: "batchEmbedContents", "embedContent", "asyncBatchEmbedContent",
    #: "batches.get", "batches.list", "batches.cancel", "batches.delete", "files.create"
    #: (an upload's start), "files.upload" (a chunk), "files.get", "files.list",
    #: "files.delete", "files.download"; None for a path not served.
    api_method: str | None = None


@dataclass(frozen=True, slots=True)
class _Script:
    outcome: int | Fault | None  # None: answer normally
    delay: float
    retry_delay: float | None


@dataclass(slots=True)
class _Request:
    path: str
    method: str | None  # as `Arrival.api_method`
    model: str | None
    texts: tuple[str, ...]  # online methods only: a batch job's texts are in its record
    dimensions: tuple[int, ...]
    api_key: str | None
    body_error: str | None  # why the JSON body could not be used, if it could not
    http_method: str = "POST"
    version: str | None = None  # "v1", "v1beta"... as in the path
    resource: str | None = None  # the file's or batch's id in the path
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass(slots=True)
class _Reply:
    status: int
    outcome: str
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False


def _quantised(model: str, text: str, dimension: int) -> np.ndarray:
    """The vector as signed integers of 1e-10: the exact decimals the server writes."""
    if not 1 <= dimension <= FULL_DIMENSION:
        raise ValueError(f"dimension must be within [1, {FULL_DIMENSION}]")
    digest = hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=8).digest()
    full = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(FULL_DIMENSION)
    full /= np.linalg.norm(full)
    magnitude = np.minimum(np.rint(np.abs(full[:dimension]) * _SCALE), _SCALE - 1)
    return np.where(full[:dimension] < 0, -magnitude, magnitude).astype(np.int64)


def expected_embedding(model: str, text: str, dimension: int = FULL_DIMENSION) -> np.ndarray:
    """The float32 vector the server sends for (model, text), exactly as a client parses it.

    `model` is the bare name ("gemini-embedding-001"), as in the request path. The values
    are sent with 10 decimals; parsed as float64 they equal ``q / 1e10`` for the integers
    ``q`` behind them, so float32 and float64 comparisons against this are both exact.
    """
    return (_quantised(model, text, dimension) / _SCALE).astype(np.float32)


def _encode_values(quantised: np.ndarray) -> bytes:
    """``{"values":[...]}`` with fixed-width numbers, formatted by numpy in one go.

    Formatting 3072 floats one by one in Python costs milliseconds; this, a fifth of one.
    Each number is a sign (or a space, which JSON allows between values), "0." and ten
    digits, then a comma.
    """
    high, low = np.divmod(np.abs(quantised), 100_000)
    chars = np.empty((len(quantised), _DECIMALS + 4), dtype=np.uint8)
    chars[:, 0] = np.where(quantised < 0, ord("-"), ord(" "))
    chars[:, 1] = ord("0")
    chars[:, 2] = ord(".")
    chars[:, 3:8] = np.take(_FIVE_DIGITS, high, axis=0)
    chars[:, 8:13] = np.take(_FIVE_DIGITS, low, axis=0)
    chars[:, 13] = ord(",")
    return b'{"values":[' + chars.tobytes()[:-1] + b"]}"


def _duration(seconds: float) -> str:
    """A google.protobuf.Duration in JSON form: "2s", "1.5s", "0.25s"."""
    text = f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _error(
    code: int, message: str, details: Sequence[dict[str, Any]] = (), status: str | None = None
) -> bytes:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or _STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}, indent=2).encode()


def _retry_info(delay: float) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _duration(delay)}


def _retry_after(delay: float) -> tuple[str, str]:
    # RFC 9110 delta-seconds are whole seconds; RetryInfo carries the precise delay.
    return ("Retry-After", str(max(1, math.ceil(delay))))


def _key_error(status: int, missing: bool) -> _Reply:
    outcome = "missing_key" if missing else "bad_key"
    if missing and status == 403:
        message = (
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API."
        )
        return _Reply(status, outcome, _error(status, message))
    if missing and status == 401:
        message = "Request is missing required authentication credential."
        return _Reply(status, outcome, _error(status, message))
    message = "API key not valid. Please pass a valid API key."
    details: list[dict[str, Any]] = [
        {
            "@type": _ERROR_INFO,
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": _SERVICE},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        },
    ]
    return _Reply(status, outcome, _error(status, message, details))


def _invalid(
    message: str, outcome: str = "invalid_argument", field_name: str | None = None
) -> _Reply:
    details: list[dict[str, Any]] = []
    if field_name is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_name, "description": message}],
            }
        )
    return _Reply(400, outcome, _error(400, f"* {message}\n" if field_name else message, details))


def _texts_of(content: Any) -> str:
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        raise TypeError("content.parts must be a list")
    texts = [part.get("text") for part in content["parts"] if isinstance(part, dict)]
    strings = [text for text in texts if isinstance(text, str)]
    if not strings or len(strings) != len(content["parts"]):
        raise TypeError("only text parts are supported")
    return "".join(strings)


def _parse(method: str, payload: Any, default_dimension: int) -> tuple[list[str], list[int]]:
    """Texts and output dimensions of a request body; TypeError if it is malformed."""
    if not isinstance(payload, dict):
        raise TypeError("the body must be a JSON object")
    entries: Any = [payload] if method == "embedContent" else payload.get("requests")
    if not isinstance(entries, list):
        raise TypeError("BatchEmbedContentsRequest.requests must be a list")
    texts: list[str] = []
    dimensions: list[int] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise TypeError("every request must be an object")
        texts.append(_texts_of(entry.get("content")))
        dimension = entry.get("outputDimensionality", default_dimension)
        if not isinstance(dimension, int) or isinstance(dimension, bool):
            raise TypeError("outputDimensionality must be an integer")
        dimensions.append(dimension)
    return texts, dimensions


def _field(mapping: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A field by its JSON name or by its proto name, as Google's JSON parser takes both.

    The SDK itself mixes them: ``{"file": {"display_name": ...}}`` and ``{"inputConfig":
    {"file_name": ...}}`` go out in snake case, the rest in camel case.
    """
    if camel in mapping:
        return mapping[camel]
    return mapping.get(re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower(), default)


def _batch_request(
    entry: Any, key: str | None, default_dimension: int, max_dimension: int
) -> BatchRequest:
    """One EmbedContentRequest of a batch; TypeError if it is not one.

    A dimension out of range is not a malformed request: only that request fails, in the
    results, where the online method refuses the whole call.
    """
    if not isinstance(entry, dict):
        raise TypeError("the request must be an object")
    text = _texts_of(entry.get("content"))
    dimension = _field(entry, "outputDimensionality", default_dimension)
    if not isinstance(dimension, int) or isinstance(dimension, bool):
        raise TypeError("outputDimensionality must be an integer")
    problem = None
    if not 1 <= dimension <= max_dimension:
        problem = f"outputDimensionality must be within [1, {max_dimension}], not {dimension}"
    return BatchRequest(key, text, dimension, problem)


def _batch_input(payload: Any) -> tuple[str | None, list[Any] | None, str | None]:
    """(display name, inline entries, input file name) of an asyncBatchEmbedContent body.

    The SDK sends ``{"batch": {"displayName": ..., "inputConfig": {"requests": {"requests":
    [{"request": {...}}, ...]}}}}`` or ``{"batch": {"inputConfig": {"file_name": ...}}}``.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), dict):
        raise TypeError('the body must be {"batch": {...}}')
    batch = payload["batch"]
    display_name = _field(batch, "displayName")
    if display_name is not None and not isinstance(display_name, str):
        raise TypeError("batch.displayName must be a string")
    input_config = _field(batch, "inputConfig")
    if not isinstance(input_config, dict):
        raise TypeError("batch.inputConfig must be an object")
    file_name = _field(input_config, "fileName")
    requests = input_config.get("requests")
    if (file_name is None) == (requests is None):
        raise TypeError("batch.inputConfig needs exactly one of fileName and requests")
    if file_name is not None:
        if not isinstance(file_name, str) or not file_name.startswith("files/"):
            raise TypeError("batch.inputConfig.fileName must be a file name, 'files/...'")
        return display_name, None, file_name
    entries = requests.get("requests") if isinstance(requests, dict) else None
    if not isinstance(entries, list):
        raise TypeError("batch.inputConfig.requests.requests must be a list")
    return display_name, entries, None


def _file_requests(
    content: bytes, default_dimension: int, max_dimension: int
) -> list[BatchRequest]:
    """The requests of a JSONL input file, ``{"key": K, "request": {...}}`` a line.

    A line that is not such a request still counts: it gets an error in the results, at
    its place, so one bad line does not sink the job. Blank lines are skipped.
    """
    requests = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        key = None
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise TypeError("a line must be a JSON object")
            if not isinstance(entry.get("key", ""), str):
                raise TypeError("key must be a string")
            key = entry.get("key")
            request = _batch_request(entry.get("request"), key, default_dimension, max_dimension)
        except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
            problem = f"Line {number} is not an embedding request: {error}"
            request = BatchRequest(key, "", 0, problem)
        requests.append(request)
    return requests


class _FragmentCache:
    """Encoded ``{"values":[...]}`` fragments by (model, text, dimension), least recent out.

    Caching keeps the server's own CPU low when a benchmark asks for the same texts again
    while sharing the machine with it.
    """

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._size = 0
        self._fragments: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, text: str, dimension: int) -> bytes:
        key = (model, text, dimension)
        with self._lock:
            fragment = self._fragments.get(key)
            if fragment is not None:
                self._fragments.move_to_end(key)
                return fragment
        # Computed outside the lock: two threads may both encode a text, which is harmless.
        fragment = _encode_values(_quantised(model, text, dimension))
        with self._lock:
            if key not in self._fragments and len(fragment) <= self._budget:
                self._fragments[key] = fragment
                self._size += len(fragment)
                while self._size > self._budget:
                    _, evicted = self._fragments.popitem(last=False)
                    self._size -= len(evicted)
        return fragment


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads are not joined on close: open connections are shut down instead.
    block_on_close = False

    def __init__(self, owner: GeminiTestServer, port: int) -> None:
        self.owner = owner
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away, or a connection shut down at close
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = CONNECTION_IDLE_TIMEOUT
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connection_closed(self.connection)

    def do_POST(self) -> None:  # http.server's naming
        self.server.owner._handle(self)

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_DELETE(self) -> None:
        self.server.owner._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # arrivals are recorded instead of logged


class GeminiTestServer:
    """The server: start it with ``with`` (or `start`/`close`), read `base_url`, then stats.

    Every accessor is thread-safe; the HTTP handlers run in daemon threads.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._config = config or ServerConfig()
        self._lock = threading.Lock()
        self._random = random.Random(self._config.seed)
        self._cache = _FragmentCache(self._config.fragment_cache_bytes)
        # Its own lock: encoding a finished job's vectors must not hold up other requests.
        self._batches = BatchService(self._cache.get)
        self._arrivals: list[Arrival] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._admitted: deque[float] = deque()  # admission times inside the quota window
        self._admitted_today = 0  # embedding requests admitted since the start or `new_day`
        self._script: deque[_Script] = deque()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self, self._config.port)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"gemini-test-server-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self, drain_timeout: float = 2.0) -> None:
        """Stop accepting, cut open connections, wait (bounded) for handlers to finish."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping out a latency or a scripted delay
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout)
        deadline = time.monotonic() + drain_timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """What to pass as ``HttpOptions(base_url=...)``: ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def config(self) -> ServerConfig:
        return self._config

    def new_day(self) -> None:
        """Midnight Pacific time: the daily quota (`daily_quota_requests`) is whole again."""
        with self._lock:
            self._admitted_today = 0

    def reconfigure(self, config: ServerConfig) -> None:
        """Behave by `config` from the next request on (port, RNG and cache budget stay)."""
        with self._lock:
            self._config = config

    # --- scripting -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        outcome: int | Fault | None = 503,
        *,
        delay: float = 0.0,
        retry_delay: float | None = None,
    ) -> None:
        """The next `count` requests get `outcome`, whatever their key, body or the quota.

        `outcome` is an HTTP status (answered with Google's error body for that status; a 429
        carries RetryInfo of `retry_delay` seconds, default 1, and Retry-After), a `Fault`,
        or None to answer normally. `delay` seconds are waited on top of the latency.
        Scripts queue up behind ones already set.
        """
        if count < 0 or delay < 0:
            raise ValueError("count and delay must not be negative")
        if isinstance(outcome, int) and not 400 <= outcome <= 599:
            raise ValueError("a scripted status must be an HTTP error (400-599)")
        with self._lock:
            self._script.extend(_Script(outcome, delay, retry_delay) for _ in range(count))

    def delay_next(self, count: int, seconds: float) -> None:
        """The next `count` requests are answered normally, `seconds` later than usual."""
        self.fail_next(count, None, delay=seconds)

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    # --- statistics ------------------------------------------------------------------

    def arrivals(self) -> list[Arrival]:
        """A copy of every arrival since the start (or the last `reset_stats`), in order."""
        with self._lock:
            return [replace(arrival) for arrival in self._arrivals]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._arrivals)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests being handled at once (headers read, answer not yet sent)."""
        with self._lock:
            return self._max_in_flight

    def texts_requested(self, *, answered_only: bool = False) -> Counter[str]:
        """How many times each text was sent; with `answered_only`, only in 200 "ok" answers."""
        counts: Counter[str] = Counter()
        with self._lock:
            for arrival in self._arrivals:
                if not answered_only or arrival.outcome == "ok":
                    counts.update(arrival.texts)
        return counts

    def max_requests_in_any_window(self, seconds: float) -> int:
        """The most arrivals within any `seconds`-long window (arrivals t with t - t0 < seconds)."""
        with self._lock:
            times = sorted(arrival.time for arrival in self._arrivals)
        best = 0
        first = 0
        for last, now in enumerate(times):
            while now - times[first] >= seconds:
                first += 1
            best = max(best, last - first + 1)
        return best

    def submitted_jobs(self) -> list[SubmittedJob]:
        """A copy of every batch job created, in order of creation, deleted ones included."""
        return self._batches.submitted_jobs()

    def uploads(self) -> list[Upload]:
        """A copy of every upload started, in order, with its bytes once it is finalized."""
        return self._batches.uploads()

    def reset_stats(self) -> None:
        """Forget arrivals and the in-flight peak; quota, script and RNG state are kept.

        Batch jobs, files and their records are state, not statistics: they are kept too.
        """
        with self._lock:
            self._arrivals.clear()
            self._max_in_flight = self._in_flight

    def statistics(self) -> dict[str, Any]:
        """A JSON-ready summary (what the standalone mode writes to its stats file)."""
        arrivals = self.arrivals()
        texts: Counter[str] = Counter()
        for arrival in arrivals:
            texts.update(arrival.texts)
        return {
            "base_url": self.base_url if self._port is not None else None,
            "request_count": len(arrivals),
            "max_in_flight": self.max_in_flight,
            "text_count": sum(arrival.text_count for arrival in arrivals),
            "unique_texts": len(texts),
            "statuses": dict(Counter(str(arrival.status) for arrival in arrivals)),
            "outcomes": dict(Counter(arrival.outcome for arrival in arrivals)),
            "max_requests_in_1s": self.max_requests_in_any_window(1.0),
            "max_requests_in_60s": self.max_requests_in_any_window(60.0),
            "texts_requested": dict(texts),
            "arrivals": [
                {key: value for key, value in asdict(arrival).items() if key != "texts"}
                for arrival in arrivals
            ],
            "batch_jobs": [
                {
                    "name": job.name,
                    "model": job.model,
                    "source": job.source,
                    "requests": len(job.texts),
                    "end_state": job.end_state.value,
                    "cancelled": job.cancelled is not None,
                    "deleted": job.deleted,
                    "results_file": job.results_file,
                }
                for job in self.submitted_jobs()
            ],
            "uploads": [
                {
                    "name": upload.name,
                    "declared_size": upload.declared_size,
                    "received": upload.received,
                    "chunks": upload.chunks,
                    "finalized": upload.finalized,
                }
                for upload in self.uploads()
            ],
        }

    # --- request handling (handler threads) ------------------------------------------

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _handle(self, handler: _Handler) -> None:
        arrived = time.monotonic()
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            config = self._config
        try:
            self._answer(handler, arrived, config)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, handler: _Handler, arrived: float, config: ServerConfig) -> None:
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            handler.close_connection = True
            message = "Request payload size exceeds the limit, or has no valid length."
            reply = _Reply(413, "invalid_argument", _error(413, message))
            self._send(handler, reply)
            return
        request = self._read(handler, handler.rfile.read(length), config)
        arrival = Arrival(
            time=arrived,
            path=request.path,
            model=request.model,
            text_count=len(request.texts),
            texts=request.texts if config.record_texts else (),
            api_key=request.api_key,
            dimension=request.dimensions[0] if request.dimensions else None,
            http_method=request.http_method,
            api_method=request.method,
        )
        with self._lock:
            self._arrivals.append(arrival)
            reply, delay = self._decide(request, arrived, config)
        if reply.status == 200 and not reply.body and not reply.drop:
            if request.method in _ONLINE_METHODS or reply.outcome == Fault.GARBAGE:
                reply.body = self._embeddings_body(request, reply.outcome)
            else:
                # The embedding-shaped faults have no meaning here: answered normally.
                reply = self._serve(request, arrived, config)
        if delay > 0 and self._stopping.wait(delay):
            reply = _Reply(0, "shutdown", drop=True)
        # Recorded before sending, so a client that has its answer also sees it recorded.
        with self._lock:
            arrival.status = None if reply.drop else reply.status
            arrival.outcome = reply.outcome
        if not self._send(handler, reply):
            with self._lock:
                arrival.status, arrival.outcome = None, "client_gone"

    def _read(self, handler: _Handler, raw: bytes, config: ServerConfig) -> _Request:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        key = handler.headers.get("x-goog-api-key")
        if key is None:
            keys = query.get("key")
            key = keys[0] if keys else None
        request = _Request(
            url.path,
            None,
            None,
            (),
            (),
            key,
            None,
            http_method=handler.command,
            query=query,
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=raw,
        )
        match = _PATH.match(url.path) if handler.command == "POST" else None
        if match is None:
            for verb, pattern, method in _ROUTES:
                found = pattern.match(url.path) if verb == handler.command else None
                if found is not None:
                    request.method = method
                    request.version = found["version"]
                    request.resource = found.groupdict().get("resource")
                    break
            if request.method == "files.create" and "upload_id" in query:
                request.method = "files.upload"
            return request
        request.method = match["method"]
        request.model = match["model"].removeprefix("models/")
        request.version = match["version"]
        if request.method not in _ONLINE_METHODS:
            return request  # its body is read when it is served
        try:
            texts, dimensions = _parse(request.method, json.loads(raw), config.default_dimension)
        except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
            request.body_error = str(error)
        else:
            request.texts, request.dimensions = tuple(texts), tuple(dimensions)
        return request

    def _decide(self, request: _Request, now: float, config: ServerConfig) -> tuple[_Reply, float]:
        """What to answer and after how long. Runs under the lock: it draws from the RNG."""
        delay = config.latency
        if config.latency_jitter:
            delay += self._random.uniform(0.0, config.latency_jitter)
        script = self._script.popleft() if self._script else None
        if script is not None:
            delay += script.delay
            if script.outcome is not None:
                return self._scripted(script), delay
        return self._judge(request, now, config), delay

    def _scripted(self, script: _Script) -> _Reply:
        outcome = script.outcome
        if isinstance(outcome, Fault):
            return (
                _Reply(0, outcome.value, drop=True)
                if outcome is Fault.DROP
                else _Reply(200, outcome.value)
            )
        assert outcome is not None
        if outcome == 429:
            retry_delay = 1.0 if script.retry_delay is None else script.retry_delay
            return self._quota_reply(retry_delay, None, None)
        details = [_retry_info(script.retry_delay)] if script.retry_delay is not None else []
        headers = [_retry_after(script.retry_delay)] if script.retry_delay is not None else []
        message = f"Scripted failure with status {outcome}."
        return _Reply(outcome, "scripted", _error(outcome, message, details), headers=headers)

    def _judge(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        # An upload URL carries its own credential, the upload id: the SDK sends no key.
        if request.method != "files.upload":
            if not request.api_key:
                return _key_error(config.missing_key_status, missing=True)
            if config.valid_keys is not None and request.api_key not in config.valid_keys:
                return _key_error(config.invalid_key_status, missing=False)
        if request.method is None:
            return _Reply(404, "not_found", _error(404, f"{request.path} is not served here."))
        served_model = config.models is None or request.model in (None, *config.models)
        if not served_model:
            served = "embedContent" if request.method in _ONLINE_METHODS else request.method
            message = (
                f"models/{request.model} is not found for this API version, or is not"
                f" supported for {served}. Call ListModels to see the available models."
            )
            return _Reply(404, "not_found", _error(404, message))
        if request.method not in _ONLINE_METHODS:
            return _Reply(200, "ok")  # `_serve` answers it, outside the lock
        if request.body_error is not None:
            return _invalid(f"Invalid JSON payload received: {request.body_error}")
        if not request.texts:
            return _invalid(
                "BatchEmbedContentsRequest.requests: must not be empty", field_name="requests"
            )
        if len(request.texts) > config.max_texts_per_request:
            message = (
                "BatchEmbedContentsRequest.requests: at most"
                f" {config.max_texts_per_request} requests can be in one batch"
            )
            return _invalid(message, "too_many_texts", field_name="requests")
        for dimension in request.dimensions:
            if not 1 <= dimension <= config.max_dimension:
                limit = config.max_dimension
                message = f"outputDimensionality must be within [1, {limit}], not {dimension}"
                return _invalid(message, field_name="outputDimensionality")
        daily = config.daily_quota_requests
        if daily is not None and self._admitted_today >= daily:
            return self._daily_quota_reply(request, daily, config.daily_quota_retry_delay)
        if config.quota_requests is not None:
            while self._admitted and now - self._admitted[0] >= config.quota_window:
                self._admitted.popleft()
            if len(self._admitted) >= config.quota_requests:
                retry_delay = config.quota_retry_delay
                if retry_delay is None:
                    retry_delay = config.quota_window - (now - self._admitted[0])
                return self._quota_reply(retry_delay, config.quota_requests, config.quota_window)
            self._admitted.append(now)
        self._admitted_today += 1
        return self._chance(config)

    def _chance(self, config: ServerConfig) -> _Reply:
        if not any(getattr(config, name) for name in _RATE_FIELDS):
            return _Reply(200, "ok")
        draw = self._random.random()
        for name in _RATE_FIELDS:
            rate: float = getattr(config, name)
            if draw < rate:
                break
            draw -= rate
        else:
            return _Reply(200, "ok")
        if name == "drop_rate":
            return _Reply(0, Fault.DROP.value, drop=True)
        if name == "server_error_rate":
            message = "An internal error has occurred. Please retry or report the problem."
            return _Reply(500, "server_error", _error(500, message))
        if name == "unavailable_rate":
            return _Reply(
                503, "unavailable", _error(503, "The model is overloaded. Please try again later.")
            )
        return _Reply(200, name.removesuffix("_rate"))

    def _quota_reply(self, retry_delay: float, limit: int | None, window: float | None) -> _Reply:
        rule = f" (limit: {limit} per {window:g} s)" if limit is not None and window else ""
        message = (
            f"Quota exceeded for embedding requests{rule}; this is a test server."
            f" Please retry in {_duration(retry_delay)}."
        )
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"{_SERVICE}/embed_content_requests",
                        "quotaId": "EmbedContentRequestsPerMinutePerProjectPerModel",
                        "quotaValue": str(limit) if limit is not None else "0",
                    }
                ],
            },
            _retry_info(retry_delay),
        ]
        headers = [_retry_after(retry_delay)] if self._config.retry_after_header else []
        return _Reply(429, "quota", _error(429, message, details), headers=headers)

    def _daily_quota_reply(self, request: _Request, limit: int, retry_delay: float) -> _Reply:
        """Google's answer once a daily quota is spent: a QuotaFailure whose quotaId names
        the day, and a RetryInfo that says nothing about when a request could succeed."""
        model = request.model or ""
        metric = f"{_SERVICE}/embed_content_free_tier_requests"
        message = (
            "You exceeded your current quota, please check your plan and billing details"
            " (this is a test server).\n"
            f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n"
            f"Please retry in {_duration(retry_delay)}."
        )
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": "EmbedContentRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaDimensions": {"model": model, "location": "global"},
                        "quotaValue": str(limit),
                    }
                ],
            },
            _retry_info(retry_delay),
        ]
        headers = [_retry_after(retry_delay)] if self._config.retry_after_header else []
        return _Reply(429, "daily_quota", _error(429, message, details), headers=headers)

    def _embeddings_body(self, request: _Request, outcome: str) -> bytes:
        if outcome == Fault.GARBAGE:
            return b"<html><body>502 Bad Gateway (test server garbage)</body></html>"
        model = request.model or ""  # a scripted fault may meet a request without a model
        pairs = list(zip(request.texts, request.dimensions, strict=True))
        if outcome == Fault.WRONG_COUNT:
            pairs = pairs[:-1]
        if outcome == Fault.WRONG_DIMENSION:
            pairs = [(text, dimension - 1 if dimension > 1 else 2) for text, dimension in pairs]
        fragments = [self._cache.get(model, text, dimension) for text, dimension in pairs]
        if outcome == Fault.WRONG_SHAPE:
            predictions = [b'{"embeddings":' + fragment + b"}" for fragment in fragments]
            return b'{"predictions":[' + b",".join(predictions) + b"]}"
        if request.method == "embedContent":
            return b'{"embedding":' + (fragments[0] if fragments else b"{}") + b"}"
        return b'{"embeddings":[' + b",".join(fragments) + b"]}"

    # --- the Files and Batch API (handler threads, outside the lock) -------------------

    def _serve(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        serve = {
            "asyncBatchEmbedContent": self._create_job,
            "batches.get": self._get_job,
            "batches.list": self._list_jobs,
            "batches.cancel": self._cancel_job,
            "batches.delete": self._delete_job,
            "files.create": self._start_upload,
            "files.upload": self._upload_chunk,
            "files.get": self._get_file,
            "files.list": self._list_files,
            "files.delete": self._delete_file,
            "files.download": self._download_file,
        }[request.method or ""]
        try:
            return serve(request, now, config)
        except ApiError as error:
            body = _error(error.http_status, error.message, status=error.status)
            reply = _Reply(error.http_status, error.outcome, body)
            if request.method == "files.upload":
                # Without an upload status the SDK retries the chunk, sleeping 1, 2, 4 s.
                reply.headers.append(("X-Goog-Upload-Status", "final"))
            return reply

    @staticmethod
    def _json(document: dict[str, Any] | bytes) -> _Reply:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return _Reply(200, "ok", body)

    @staticmethod
    def _page_query(request: _Request) -> tuple[int | None, str | None]:
        sizes, tokens = request.query.get("pageSize", []), request.query.get("pageToken", [])
        if sizes and not sizes[0].isdigit():
            raise ApiError(400, "INVALID_ARGUMENT", f"pageSize {sizes[0]!r} is not a number.")
        return (int(sizes[0]) if sizes else None), (tokens[0] if tokens else None)

    def _create_job(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        try:
            display_name, entries, file_name = _batch_input(json.loads(request.body))
        except (ValueError, TypeError) as error:
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid batch request: {error}") from None
        dimensions = (config.default_dimension, config.max_dimension)
        if file_name is not None:
            try:
                content = self._batches.file(file_name).content
            except ApiError:
                raise ApiError(
                    404, "NOT_FOUND", f"The input file {file_name} does not exist."
                ) from None
            requests = _file_requests(content, *dimensions)
        else:
            assert entries is not None
            requests = []
            for index, entry in enumerate(entries):
                try:
                    inner = entry.get("request") if isinstance(entry, dict) else None
                    requests.append(_batch_request(inner, None, *dimensions))
                except TypeError as error:
                    message = f"batch.inputConfig.requests.requests[{index}]: {error}"
                    raise ApiError(400, "INVALID_ARGUMENT", message) from None
        assert request.model is not None
        body = self._batches.create_job(
            model=request.model,
            source=file_name or "inline",
            display_name=display_name,
            requests=requests,
            api_key=request.api_key,
            config=config.batch,
            now=now,
        )
        return self._json(body)

    def _get_job(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        return self._json(self._batches.job(f"batches/{request.resource}", now))

    def _list_jobs(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        return self._json(self._batches.job_page(*self._page_query(request), now))

    def _cancel_job(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        self._batches.cancel_job(f"batches/{request.resource}", now)
        return self._json({})

    def _delete_job(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        self._batches.delete_job(f"batches/{request.resource}")
        return self._json({})

    def _start_upload(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        """The start of a resumable upload: metadata in, an upload URL out (in a header)."""
        headers = request.headers
        if headers.get("x-goog-upload-protocol") != "resumable":
            message = "Only the resumable upload protocol is served (X-Goog-Upload-Protocol)."
            raise ApiError(400, "INVALID_ARGUMENT", message)
        if headers.get("x-goog-upload-command") != "start":
            raise ApiError(
                400, "INVALID_ARGUMENT", "An upload starts with X-Goog-Upload-Command: start."
            )
        try:
            size = int(headers["x-goog-upload-header-content-length"])
            payload = json.loads(request.body) if request.body.strip() else {}
            metadata = _field(payload, "file", {}) if isinstance(payload, dict) else None
            if not isinstance(metadata, dict):
                raise TypeError('the body must be {"file": {...}}')
        except KeyError:
            message = "X-Goog-Upload-Header-Content-Length is required: the size to upload."
            raise ApiError(400, "INVALID_ARGUMENT", message) from None
        except (ValueError, TypeError) as error:
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid upload request: {error}") from None
        mime_type = headers.get("x-goog-upload-header-content-type") or _field(metadata, "mimeType")
        upload_id = self._batches.start_upload(
            name=_field(metadata, "name"),
            display_name=_field(metadata, "displayName"),
            mime_type=mime_type or "application/octet-stream",
            size=size,
            api_key=request.api_key,
        )
        url = f"{self.base_url}/upload/{request.version or 'v1beta'}/files"
        url += f"?upload_id={upload_id}&upload_protocol=resumable"
        reply = _Reply(200, "ok")
        reply.headers += [
            ("X-Goog-Upload-Status", "active"),
            ("X-Goog-Upload-URL", url),
            ("X-Goog-Upload-Control-URL", url),
            ("X-Goog-Upload-Chunk-Granularity", str(UPLOAD_CHUNK_GRANULARITY)),
        ]
        return reply

    def _upload_chunk(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        """One chunk to an upload URL: "upload", "upload, finalize", "finalize" or "query"."""
        upload_id = request.query["upload_id"][0]
        commands = {
            word.strip() for word in request.headers.get("x-goog-upload-command", "").split(",")
        }
        reply = _Reply(200, "ok")
        if commands == {"query"}:
            received = self._batches.received(upload_id)
            reply.headers += [
                ("X-Goog-Upload-Status", "active"),
                ("X-Goog-Upload-Size-Received", str(received)),
            ]
            return reply
        if not commands or not commands <= {"upload", "finalize"}:
            message = (
                f"Unknown X-Goog-Upload-Command {request.headers.get('x-goog-upload-command')!r}."
            )
            raise ApiError(400, "INVALID_ARGUMENT", message)
        try:
            offset = int(request.headers.get("x-goog-upload-offset", ""))
        except ValueError:
            raise ApiError(
                400, "INVALID_ARGUMENT", "X-Goog-Upload-Offset must be a number."
            ) from None
        stored = self._batches.receive_chunk(
            upload_id,
            offset=offset,
            data=request.body if "upload" in commands else b"",
            finalize="finalize" in commands,
            now_wall=time.time(),
        )
        if stored is None:
            reply.headers.append(("X-Goog-Upload-Status", "active"))
            return reply
        reply.body = json.dumps({"file": file_resource(stored, self.base_url)}).encode()
        reply.headers.append(("X-Goog-Upload-Status", "final"))
        return reply

    def _get_file(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        stored = self._batches.file(f"files/{request.resource}")
        return self._json(file_resource(stored, self.base_url))

    def _list_files(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        return self._json(self._batches.file_page(*self._page_query(request), self.base_url))

    def _delete_file(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        self._batches.delete_file(f"files/{request.resource}")
        return self._json({})

    def _download_file(self, request: _Request, now: float, config: ServerConfig) -> _Reply:
        """A file's bytes with ``alt=media`` (what the SDK asks), else its metadata."""
        if request.query.get("alt") != ["media"]:
            return self._get_file(request, now, config)
        stored = self._batches.download(f"files/{request.resource}")
        return _Reply(200, "ok", stored.content, content_type=stored.mime_type)

    def _send(self, handler: _Handler, reply: _Reply) -> bool:
        """Write the reply (or cut the connection); False if the client had gone."""
        try:
            if reply.drop:
                handler.close_connection = True
                # Linger 0 makes close() send a TCP reset: no answer, no orderly FIN.
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                handler.connection.close()
                return True
            content_type = (
                "text/html; charset=UTF-8" if reply.outcome == Fault.GARBAGE else reply.content_type
            )
            handler.send_response(reply.status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(reply.body)
            return True
        except OSError:
            handler.close_connection = True
            return False


# --- standalone mode ------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tests.gemini_server",
        description="Serve Gemini-compatible embeddings on 127.0.0.1 until SIGTERM or SIGINT.",
    )
    add = parser.add_argument
    add("--port", type=int, default=0, help="0 lets the OS choose (default)")
    add(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help=f"a valid API key (repeatable; default {DEFAULT_API_KEY!r})",
    )
    add("--any-key", action="store_true", help="accept any non-empty key")
    add(
        "--invalid-key-status",
        type=int,
        default=defaults.invalid_key_status,
        choices=(400, 401, 403),
    )
    add(
        "--missing-key-status",
        type=int,
        default=defaults.missing_key_status,
        choices=(400, 401, 403),
    )
    add(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="a served model (repeatable; default any)",
    )
    add("--max-texts", type=int, default=defaults.max_texts_per_request)
    add("--max-dimension", type=int, default=defaults.max_dimension)
    add("--default-dimension", type=int, default=defaults.default_dimension)
    add("--latency", type=float, default=defaults.latency, help="seconds before every answer")
    add("--latency-jitter", type=float, default=defaults.latency_jitter)
    add(
        "--quota-requests",
        type=int,
        default=None,
        help="requests admitted per window (default no quota)",
    )
    add("--quota-window", type=float, default=defaults.quota_window)
    add("--quota-retry-delay", type=float, default=None)
    add(
        "--daily-quota-requests",
        type=int,
        default=None,
        help="requests admitted per day, that is per server run (default no daily quota)",
    )
    add("--daily-quota-retry-delay", type=float, default=defaults.daily_quota_retry_delay)
    add("--no-retry-after", action="store_true", help="omit the Retry-After header on 429")
    for name in _RATE_FIELDS:
        add(f"--{name.replace('_', '-')}", type=float, default=0.0, dest=name)
    add("--seed", type=int, default=defaults.seed)
    add("--no-record-texts", action="store_true")
    add("--fragment-cache-mb", type=float, default=defaults.fragment_cache_bytes / 2**20)
    ends = [state.name.lower() for state in END_STATES]
    add(
        "--batch-delay",
        type=float,
        default=defaults.batch.delay,
        help="seconds from a batch job's creation to its end (pending, then running)",
    )
    add("--batch-end", choices=ends, default=defaults.batch.end_state.name.lower())
    add(
        "--batch-ends",
        default="",
        metavar="STATE,...",
        help="how the first jobs end, in order (e.g. expired,succeeded); later: --batch-end",
    )
    add("--batch-error-marker", default=None, metavar="TEXT", help="requests with it fail")
    add(
        "--batch-error-position",
        type=int,
        action="append",
        default=[],
        dest="batch_error_positions",
        metavar="N",
        help="the request at this position (0 = first) of every job fails (repeatable)",
    )
    add("--batch-error-status", choices=sorted(GRPC_CODES), default=defaults.batch.error_status)
    add("--stats-file", type=Path, default=None, help="JSON statistics written here on exit")
    add("--lifetime", type=float, default=None, help="exit by itself after this many seconds")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    valid_keys = None if args.any_key else frozenset(args.keys or [DEFAULT_API_KEY])
    return ServerConfig(
        port=args.port,
        valid_keys=valid_keys,
        invalid_key_status=args.invalid_key_status,
        missing_key_status=args.missing_key_status,
        models=frozenset(args.models) if args.models else None,
        max_texts_per_request=args.max_texts,
        max_dimension=args.max_dimension,
        default_dimension=args.default_dimension,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        quota_requests=args.quota_requests,
        quota_window=args.quota_window,
        quota_retry_delay=args.quota_retry_delay,
        daily_quota_requests=args.daily_quota_requests,
        daily_quota_retry_delay=args.daily_quota_retry_delay,
        retry_after_header=not args.no_retry_after,
        seed=args.seed,
        record_texts=not args.no_record_texts,
        fragment_cache_bytes=int(args.fragment_cache_mb * 2**20),
        batch=BatchConfig(
            delay=args.batch_delay,
            end_state=BatchState[args.batch_end.upper()],
            end_states=tuple(_batch_end(word) for word in args.batch_ends.split(",") if word),
            error_marker=args.batch_error_marker,
            error_positions=frozenset(args.batch_error_positions),
            error_status=args.batch_error_status,
        ),
        **{name: getattr(args, name) for name in _RATE_FIELDS},
    )


def _batch_end(word: str) -> BatchState:
    try:
        state = BatchState[word.strip().upper()]
    except KeyError:
        state = None
    if state not in END_STATES:
        names = ", ".join(state.name.lower() for state in END_STATES)
        raise ValueError(f"--batch-ends takes {names}, not {word!r}")
    return state


def _write_json(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(partial, path)


def main(argv: Iterable[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = GeminiTestServer(config)
    with server:
        print(server.base_url, flush=True)
        deadline = None if args.lifetime is None else time.monotonic() + args.lifetime
        # Short waits keep the main thread responsive to signals; each is bounded.
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
    if args.stats_file is not None:
        _write_json(args.stats_file, server.statistics())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
