"""Embedding providers: texts in, a float32 matrix out.

Every provider (the offline GloVe one, Gemini, test doubles) implements the
one-method `EmbeddingProvider` protocol, so the pipeline, and later the
batching, caching and rate limiting around it, never care which one runs.
"""

from asyncpipe.embeddings.providers.base import EmbeddingProvider, ProviderInfo

__all__ = ["EmbeddingProvider", "ProviderInfo"]
