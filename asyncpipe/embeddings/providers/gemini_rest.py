"""The REST transport of the Gemini provider: batchEmbedContents through httpx, decoded by msgspec.

The same method, header (`x-goog-api-key`) and base URL as the google-genai
SDK, but the answer is decoded by msgspec straight into one checked float32
matrix (`decode.vectors_from_answer`): the SDK spends about a millisecond of
CPU per 3072-value vector building pydantic objects (the README has the
figures). Non-200 answers become asyncpipe errors here (`gemini_errors`);
httpx's own errors (resets, timeouts) go up as they are, for the provider to
map with those of the SDK.

Decoding is CPU work that holds the GIL (10 to 60 ms for 100 vectors of 3072),
so a thread would not help. Given a process pool (`decode_in`), the transport
sends each answer's bytes to a worker and awaits the matrix; without one it
decodes on the event loop, which is fine for small dimensions. `receive` stops
at the answer's bytes, so that the engine can free the request slot before the
decode (`base.ReceivesBeforeDecoding`); `embed` does both.

The requests themselves run on a thread of their own (`request_thread`): reading
a 4.3 MB body through httpx is some 17 ms of Python work, which on the run's
loop was most of its lag. The client is used and closed only on that thread.

The httpx transport can be handed in (`httpx.MockTransport` in tests); by
default httpx opens real connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import httpx
import msgspec
import numpy as np

from asyncpipe.embeddings.providers.decode import vectors_from_answer
from asyncpipe.embeddings.providers.gemini_errors import error_for_status
from asyncpipe.embeddings.providers.request_thread import RequestThread
from asyncpipe.settings.sections import Gemini

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class RestTransport:
    """POST batchEmbedContents with httpx; decode with msgspec into a checked float32 matrix."""

    def __init__(
        self,
        settings: Gemini,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        executor: Executor | None = None,
    ) -> None:
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
            transport=transport,
        )
        self._executor = executor
        self._requests = RequestThread()
        _import_the_network_backend()

    def decode_in(self, executor: Executor | None) -> None:
        """Decode answers in `executor` (a process pool) from now on; None: on the event loop.

        The executor must outlive the requests that use it: one shut down refuses
        the next answer with RuntimeError.
        """
        self._executor = executor

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await (await self.receive(texts)).vectors()

    async def receive(self, texts: Sequence[str]) -> _EncodedAnswer:
        """The answer's bytes, checked for the status; decoded by `vectors()` later."""
        return await self._requests.run(self._post(texts))

    async def _post(self, texts: Sequence[str]) -> _EncodedAnswer:
        """One request, on the request thread's loop."""
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
        # The body is read into bytes of our own, never kept on the response: httpx's
        # Response and its stream refer to each other, so a response is freed only by
        # the cyclic collector, and at 4.3 MB an answer (3072 dimensions) 40 of them,
        # 176 MB, were waiting for it in the middle of a round.
        request = self._client.stream("POST", self._path, content=msgspec.json.encode(body))
        async with request as response:
            content = b"".join([part async for part in response.aiter_bytes()])
        if response.status_code != 200:
            raise error_for_status(response.status_code, content, response.headers)
        return _EncodedAnswer(content, len(texts), self._dimension, self._executor)

    async def aclose(self) -> None:
        try:
            await self._requests.run(self._client.aclose())
        finally:
            await self._requests.aclose()


def _import_the_network_backend() -> None:
    """Import now what httpx's first connection would: anyio's asyncio backend.

    Imported lazily, it is 30 ms (65 under load) of the event loop's time during the
    first request of a run, with the rest of the first wave waiting behind it. Here
    it is paid while the run is set up, before the loop starts.
    """
    with contextlib.suppress(ImportError):  # another anyio layout: it comes lazily
        importlib.import_module("anyio._backends._asyncio")
        importlib.import_module("httpcore._backends.anyio")


@dataclass(frozen=True, slots=True, repr=False)  # repr=False: megabytes of JSON
class _EncodedAnswer:
    """A 200 answer's JSON, decoded in the executor (or on the loop without one)."""

    content: bytes
    texts: int
    dimension: int
    executor: Executor | None

    async def vectors(self) -> np.ndarray:
        decode = functools.partial(vectors_from_answer, self.content, self.texts, self.dimension)
        if self.executor is None:
            return decode()
        return await asyncio.get_running_loop().run_in_executor(self.executor, decode)
