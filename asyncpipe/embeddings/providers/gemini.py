"""The Gemini provider: batches of texts to Gemini embeddings, over one of two transports.

- `sdk`: the google-genai SDK's async client (`client.aio.models.embed_content`);
- `rest` (the default): the same REST method (`models/{model}:batchEmbedContents`,
  the same `x-goog-api-key` header and base URL) through httpx, with the answer
  decoded by msgspec straight into a float32 matrix. The SDK spends about a
  millisecond of CPU per 3072-value vector building pydantic objects, which
  caps one process below what a paid quota allows; the README has the figures.

Both map failures the same way: 429, 408, 5xx, timeouts, dropped connections
and malformed answers are retryable (with the server's retry delay when it gave
one); 400, 401, 403, 404 and other client errors are fatal, because retrying a
bad key or a bad request only burns quota and time. Every answer is checked
(one vector per text, the expected dimension, finite values) and normalised
when the dimension is below 3072, the only size the API returns at unit length.

The API key is handed in by the caller; it never appears in an error message,
a log line or the run's outputs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
import msgspec
import numpy as np

from asyncpipe.embeddings.providers.base import ProviderInfo
from asyncpipe.errors import EmbeddingError, FatalEmbeddingError, RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini

#: The only output size the API returns already normalised.
FULL_DIMENSION = 3072
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)s\s*$")


def _transport_errors() -> tuple[type[Exception], ...]:
    """httpx's errors, and those of httpx2, the fork newer google-genai releases use."""
    errors: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


class _Transport(Protocol):
    async def embed(self, texts: Sequence[str]) -> list[Any] | np.ndarray: ...

    async def aclose(self) -> None: ...


class GeminiProvider:
    """Embeds batches against the Gemini API or a compatible server (gateway, test server)."""

    def __init__(self, settings: Gemini, api_key: str) -> None:
        self._api_key = api_key
        self._dimension = settings.embedding_dimension
        self._info = ProviderInfo(
            name="gemini",
            model=settings.model_id,
            dimension=settings.embedding_dimension,
            task_type=settings.task_type,
        )
        transport_class = _RestTransport if settings.transport == "rest" else _SdkTransport
        self._transport: _Transport = transport_class(settings, api_key)

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            values = await self._transport.embed(texts)
        except EmbeddingError as error:
            raise type(error)(
                self._scrub(str(error)), status=error.status, **_extra(error)
            ) from None
        except _TRANSPORT_ERRORS as error:
            kind = "timed out" if "Timeout" in type(error).__name__ else "failed"
            raise RetryableEmbeddingError(
                f"the embedding request {kind} ({type(error).__name__})"
            ) from None
        return checked_vectors(values, len(texts), self._dimension)

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _extra(error: EmbeddingError) -> dict[str, Any]:
    if isinstance(error, RetryableEmbeddingError):
        return {"retry_after": error.retry_after}
    return {}


class _RestTransport:
    """POST batchEmbedContents with httpx; decode with msgspec into plain float lists."""

    def __init__(self, settings: Gemini, api_key: str) -> None:
        base_url = settings.base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        self._path = f"/{settings.api_version}/models/{settings.model_id}:batchEmbedContents"
        self._model = f"models/{settings.model_id}"
        self._task_type = settings.task_type
        self._dimension = settings.embedding_dimension
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"x-goog-api-key": api_key, "content-type": "application/json"},
            timeout=settings.request_timeout,
            # Connections are capped by the request gate; httpx must not queue below it.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._decoder = msgspec.json.Decoder(_BatchAnswer)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body = {
            "requests": [
                {
                    "model": self._model,
                    "content": {"parts": [{"text": text}]},
                    "taskType": self._task_type,
                    "outputDimensionality": self._dimension,
                }
                for text in texts
            ]
        }
        response = await self._client.post(self._path, content=msgspec.json.encode(body))
        if response.status_code != 200:
            raise error_for_status(response.status_code, response.content, response.headers)
        try:
            answer = self._decoder.decode(response.content)
        except msgspec.DecodeError as error:
            raise RetryableEmbeddingError(
                f"the answer is not an embedding batch ({error})"
            ) from None
        return [embedding.values for embedding in answer.embeddings]

    async def aclose(self) -> None:
        await self._client.aclose()


class _Embedding(msgspec.Struct):
    values: list[float]


class _BatchAnswer(msgspec.Struct):
    embeddings: list[_Embedding]


class _SdkTransport:
    """`client.aio.models.embed_content` of google-genai, errors mapped like the REST path."""

    def __init__(self, settings: Gemini, api_key: str) -> None:
        from google import genai
        from google.genai import errors, types

        http_options = types.HttpOptions(
            base_url=settings.base_url,  # None: the SDK reads GOOGLE_GEMINI_BASE_URL itself
            api_version=settings.api_version,
            timeout=int(settings.request_timeout * 1000),  # milliseconds
        )
        self._client = genai.Client(api_key=api_key, http_options=http_options)
        self._model = settings.model_id
        self._config = types.EmbedContentConfig(
            task_type=settings.task_type, output_dimensionality=settings.embedding_dimension
        )
        self._api_error: type[Exception] = errors.APIError

    async def embed(self, texts: Sequence[str]) -> list[Any]:
        try:
            response = await self._client.aio.models.embed_content(
                model=self._model, contents=list(texts), config=self._config
            )
        except self._api_error as error:
            status = int(getattr(error, "code", 0) or 0)
            headers = getattr(getattr(error, "response", None), "headers", None) or {}
            raise _error_from_parts(
                status, getattr(error, "details", None), headers, getattr(error, "message", None)
            ) from None
        except json.JSONDecodeError as error:
            raise RetryableEmbeddingError(f"the answer is not JSON ({error.msg})") from None
        return [embedding.values for embedding in response.embeddings or ()]

    async def aclose(self) -> None:
        await self._client.aio.aclose()


def error_for_status(status: int, body: bytes, headers: Mapping[str, str]) -> EmbeddingError:
    """The asyncpipe error for a non-200 answer of the REST method."""
    try:
        details = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        details = None
    return _error_from_parts(status, details, headers, None)


def _error_from_parts(
    status: int, details: Any, headers: Mapping[str, str], message: str | None
) -> EmbeddingError:
    error = details.get("error", {}) if isinstance(details, dict) else {}
    error = error if isinstance(error, dict) else {}
    reason = error.get("status") or ""
    text = message or error.get("message") or ""
    described = f"Gemini API answered {status} {reason}: {text}".strip().rstrip(":")
    if status in RETRYABLE_STATUSES:
        return RetryableEmbeddingError(
            described, status=status, retry_after=retry_delay(details, headers)
        )
    return FatalEmbeddingError(described, status=status)


def checked_vectors(
    values: Sequence[Any] | np.ndarray, expected_count: int, dimension: int
) -> np.ndarray:
    """One finite vector of `dimension` per text, unit length; else a retryable error."""
    if len(values) != expected_count:
        raise RetryableEmbeddingError(
            f"the answer holds {len(values)} vectors for {expected_count} texts"
        )
    try:
        matrix = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise RetryableEmbeddingError("the answer holds vectors of unequal sizes") from None
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise RetryableEmbeddingError(
            f"the answer holds vectors of shape {matrix.shape[1:]}, expected ({dimension},)"
        )
    if not np.isfinite(matrix).all():
        raise RetryableEmbeddingError("the answer holds non-finite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not norms.all():
        raise RetryableEmbeddingError("the answer holds a zero vector")
    if dimension == FULL_DIMENSION:
        return matrix
    return matrix / norms


def retry_delay(details: Any, headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for: RetryInfo's retryDelay, else Retry-After (seconds)."""
    for detail in _error_details(details):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    header = headers.get("retry-after") if headers else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None  # an HTTP date: rare from Google; the backoff applies instead
    return None


def _error_details(details: Any) -> list[dict[str, Any]]:
    if not isinstance(details, dict):
        return []
    error = details.get("error", details)
    found = error.get("details", []) if isinstance(error, dict) else []
    return (
        [detail for detail in found if isinstance(detail, dict)] if isinstance(found, list) else []
    )
