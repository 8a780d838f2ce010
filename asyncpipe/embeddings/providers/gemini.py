"""The Gemini provider: batches of texts to Gemini embeddings, over one of two transports.

- `rest` (the default, `gemini_rest`): the REST method through httpx, decoded by msgspec;
- `sdk` (`gemini_sdk`): the google-genai SDK's async client.

Both map failures the same way (`gemini_errors`): 429, 408, 5xx, timeouts,
dropped connections and malformed answers are retryable (with the server's
retry delay when it gave one); 400, 401, 403, 404 and other client errors are
fatal. Every answer is checked (`decode.checked_vectors`: one vector per text,
the expected dimension, finite values) and normalised when the dimension is
below 3072, the only size the API returns at unit length.

At large dimensions the REST answers are worth decoding in a process pool, off
the event loop: `decode_in(executor)`.

The API key is handed in by the caller; it never appears in an error message,
a log line or the run's outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import numpy as np

from asyncpipe.embeddings.providers.base import Answer, ProviderInfo
from asyncpipe.embeddings.providers.decode import FULL_DIMENSION as FULL_DIMENSION
from asyncpipe.embeddings.providers.gemini_rest import RestTransport
from asyncpipe.embeddings.providers.gemini_sdk import (
    TRANSPORT_ERRORS,
    SdkTransport,
    transport_failure,
)
from asyncpipe.errors import EmbeddingError, RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini


class _Transport(Protocol):
    """Texts in, the checked float32 matrix out (`decode.checked_vectors`)."""

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    async def receive(self, texts: Sequence[str]) -> Answer: ...

    async def aclose(self) -> None: ...


class GeminiProvider:
    """Embeds batches against the Gemini API or a compatible server (gateway, test server).

    `http_transport` replaces the network under the REST transport (for instance an
    `httpx.MockTransport`); None, the default, opens real connections. The SDK
    transport brings its own client, so it takes none.

    `decode_in(executor)` moves the REST transport's decoding into a process pool.
    """

    def __init__(
        self,
        settings: Gemini,
        api_key: str,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key
        self._info = ProviderInfo(
            name="gemini",
            model=settings.model_id,
            dimension=settings.embedding_dimension,
            task_type=settings.task_type,
        )
        self._transport: _Transport
        if settings.transport == "rest":
            self._transport = RestTransport(settings, api_key, http_transport)
        elif http_transport is not None:
            raise ValueError("an httpx transport can only be given to the rest transport")
        else:
            self._transport = SdkTransport(settings, api_key)  # imports the SDK only now

    @property
    def info(self) -> ProviderInfo:
        return self._info

    def decode_in(self, executor: Executor | None) -> None:
        """Decode REST answers in `executor`, a process pool; None: on the event loop again.

        Each answer's bytes go to a worker, which returns the checked float32 matrix,
        so the loop does no per-value work. The executor must be a process pool
        (msgspec holds the GIL, a thread would not help) and must outlive the
        requests: one shut down refuses the next answer with RuntimeError. The SDK
        transport decodes inside its own client, so there it changes nothing.
        """
        if isinstance(self._transport, RestTransport):
            self._transport.decode_in(executor)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await (await self.receive(texts)).vectors()

    async def receive(self, texts: Sequence[str]) -> Answer:
        """The answer to one request; its errors, and its decoding's, as asyncpipe's own."""
        with self._mapped_errors():
            return _MappedAnswer(await self._transport.receive(texts), self)

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except EmbeddingError as error:
            raise type(error)(
                self._scrub(str(error)), status=error.status, **_extra(error)
            ) from None
        except TRANSPORT_ERRORS as error:
            raise transport_failure(error) from None

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _extra(error: EmbeddingError) -> dict[str, Any]:
    if isinstance(error, RetryableEmbeddingError):
        return {"retry_after": error.retry_after}
    return {}


@dataclass(frozen=True, slots=True)
class _MappedAnswer:
    """A transport's answer whose decoding errors are mapped like the request's."""

    answer: Answer
    provider: GeminiProvider

    async def vectors(self) -> np.ndarray:
        with self.provider._mapped_errors():
            return await self.answer.vectors()
