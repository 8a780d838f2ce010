"""The REST transport of the Gemini provider: batchEmbedContents through httpx, decoded by msgspec.

The same method, header (`x-goog-api-key`) and base URL as the google-genai
SDK, but the answer is decoded by msgspec straight into plain float lists: the
SDK spends about a millisecond of CPU per 3072-value vector building pydantic
objects (the README has the figures). Non-200 answers become asyncpipe errors
here (`gemini_errors`); httpx's own errors (resets, timeouts) go up as they
are, for the provider to map with those of the SDK.

The httpx transport can be handed in (`httpx.MockTransport` in tests); by
default httpx opens real connections.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import msgspec

from asyncpipe.embeddings.providers.gemini_errors import error_for_status
from asyncpipe.errors import RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class _Embedding(msgspec.Struct):
    values: list[float]


class _BatchAnswer(msgspec.Struct):
    embeddings: list[_Embedding]


class RestTransport:
    """POST batchEmbedContents with httpx; decode with msgspec into plain float lists."""

    def __init__(
        self, settings: Gemini, api_key: str, transport: httpx.AsyncBaseTransport | None = None
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
