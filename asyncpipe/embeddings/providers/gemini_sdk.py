"""The SDK transport of the Gemini provider: google-genai's `client.aio.models.embed_content`.

Kept beside the REST transport for those who prefer the official client; the
requests and the error mapping (`gemini_errors`) are the same. The SDK is
imported only when this transport is chosen, or when the Batch API is used
(`gemini_batch`), which shares `sdk_client` and `mapped_sdk_errors` with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
import numpy as np

from asyncpipe.embeddings.providers.base import Decoded
from asyncpipe.embeddings.providers.decode import checked_vectors
from asyncpipe.embeddings.providers.gemini_errors import error_from_parts
from asyncpipe.errors import RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini

if TYPE_CHECKING:
    from google import genai


def sdk_client(settings: Gemini, api_key: str) -> genai.Client:
    """A google-genai client for `settings`: its address, API version and request timeout."""
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(
        base_url=settings.base_url,  # None: the SDK reads GOOGLE_GEMINI_BASE_URL itself
        api_version=settings.api_version,
        timeout=int(settings.request_timeout * 1000),  # milliseconds
    )
    return genai.Client(api_key=api_key, http_options=http_options)


@contextmanager
def mapped_sdk_errors() -> Iterator[None]:
    """The SDK's API errors as asyncpipe's, mapped like the REST method's (`gemini_errors`).

    A dropped connection or a timeout (httpx's, or httpx2's in newer SDKs), an answer
    that is not JSON, or one the SDK's models refuse, is a passing error: the online
    engine and the Batch API waits retry it, none of them ends the run with a traceback."""
    import pydantic
    from google.genai import errors

    try:
        yield
    except errors.APIError as error:
        status = int(getattr(error, "code", 0) or 0)
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        raise error_from_parts(
            status, getattr(error, "details", None), headers, getattr(error, "message", None)
        ) from None
    except json.JSONDecodeError as error:
        raise RetryableEmbeddingError(f"the answer is not JSON ({error.msg})") from None
    except pydantic.ValidationError as error:
        raise RetryableEmbeddingError(
            f"the answer does not fit the SDK's model ({error.error_count()} problems)"
        ) from None
    except TRANSPORT_ERRORS as error:
        raise transport_failure(error) from None


def transport_failure(error: Exception) -> RetryableEmbeddingError:
    """A dropped connection or a timeout (one of `TRANSPORT_ERRORS`), as a passing error."""
    kind = "timed out" if "Timeout" in type(error).__name__ else "failed"
    return RetryableEmbeddingError(f"the embedding request {kind} ({type(error).__name__})")


def _transport_errors() -> tuple[type[Exception], ...]:
    """httpx's errors, and those of httpx2, the fork newer google-genai releases use."""
    found: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2

        found.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()


class SdkTransport:
    """`client.aio.models.embed_content` of google-genai, errors mapped like the REST path."""

    def __init__(self, settings: Gemini, api_key: str) -> None:
        from google.genai import types

        self._client = sdk_client(settings, api_key)
        self._model = settings.model_id
        self._config = types.EmbedContentConfig(
            task_type=settings.task_type, output_dimensionality=settings.embedding_dimension
        )
        self._dimension = settings.embedding_dimension

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        with mapped_sdk_errors():
            response = await self._client.aio.models.embed_content(
                model=self._model, contents=list(texts), config=self._config
            )
        values = [embedding.values for embedding in response.embeddings or ()]
        return checked_vectors(values, len(texts), self._dimension)

    async def receive(self, texts: Sequence[str]) -> Decoded:
        """The SDK decodes as it receives: the answer comes already decoded."""
        return Decoded(await self.embed(texts))

    async def aclose(self) -> None:
        await self._client.aio.aclose()
