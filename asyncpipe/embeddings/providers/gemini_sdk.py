"""The SDK transport of the Gemini provider: google-genai's `client.aio.models.embed_content`.

Kept beside the REST transport for those who prefer the official client; the
requests and the error mapping (`gemini_errors`) are the same. The SDK is
imported only when this transport is chosen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from asyncpipe.embeddings.providers.base import Decoded
from asyncpipe.embeddings.providers.decode import checked_vectors
from asyncpipe.embeddings.providers.gemini_errors import error_from_parts
from asyncpipe.errors import RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini


class SdkTransport:
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
        self._dimension = settings.embedding_dimension
        self._api_error: type[Exception] = errors.APIError

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            response = await self._client.aio.models.embed_content(
                model=self._model, contents=list(texts), config=self._config
            )
        except self._api_error as error:
            status = int(getattr(error, "code", 0) or 0)
            headers = getattr(getattr(error, "response", None), "headers", None) or {}
            raise error_from_parts(
                status, getattr(error, "details", None), headers, getattr(error, "message", None)
            ) from None
        except json.JSONDecodeError as error:
            raise RetryableEmbeddingError(f"the answer is not JSON ({error.msg})") from None
        values = [embedding.values for embedding in response.embeddings or ()]
        return checked_vectors(values, len(texts), self._dimension)

    async def receive(self, texts: Sequence[str]) -> Decoded:
        """The SDK decodes as it receives: the answer comes already decoded."""
        return Decoded(await self.embed(texts))

    async def aclose(self) -> None:
        await self._client.aio.aclose()
