"""Assemble an embedding engine for one run, in one obvious place, and take it down again.

The pieces (provider, request gate, retry policy, LRU cache, persistent store,
daily budget) each do one job and know nothing of each other; this is where
params.yaml decides how they are sized and joined. A local provider (GloVe) gets
no rate limit, no token limit, no daily budget and no store: it has no quota, and
recomputing is cheaper than storing. The daily budget's file lives beside the
store, in `paths.cache`. On the way out, whatever happened, the budget writes its
exact count, the store is closed (its last transaction committed) and the
provider's client is closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from asyncpipe.embeddings.cache import ENTRY_OVERHEAD_BYTES, LruVectorCache, Namespace
from asyncpipe.embeddings.daily_budget import BUDGET_FILE, DailyBudget
from asyncpipe.embeddings.engine import EmbeddingEngine
from asyncpipe.embeddings.limits import RequestGate
from asyncpipe.embeddings.providers.base import EmbeddingProvider
from asyncpipe.embeddings.retry import RetryPolicy
from asyncpipe.embeddings.store import STORE_FILE, EmbeddingStore
from asyncpipe.errors import EmbeddingError
from asyncpipe.settings.sections import Params

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_engine(
    provider: EmbeddingProvider,
    params: Params,
    cache_dir: Path,
    refused: Mapping[str, EmbeddingError] | None = None,
) -> AsyncIterator[EmbeddingEngine]:
    """`refused`: texts not to request, with the error their themes get instead
    (`EmbeddingEngine`; the Batch API jobs that ran before decide them)."""
    info = provider.info
    remote = not info.local
    gate = RequestGate(
        max_concurrent=params.concurrency.max_concurrent_requests,
        requests_per_minute=params.gemini.requests_per_minute if remote else None,
        min_interval=params.gemini.min_request_interval if remote else 0.0,
        tokens_per_minute=params.gemini.tokens_per_minute if remote else None,
    )
    retry = RetryPolicy(
        max_retries=params.gemini.max_retries, base_delay=params.gemini.retry_base_delay
    )
    store: EmbeddingStore | None = None
    budget: DailyBudget | None = None
    try:
        if remote and params.gemini.requests_per_day is not None:
            budget = DailyBudget(cache_dir / BUDGET_FILE, params.gemini.requests_per_day)
        if remote:
            namespace = Namespace(info.model, info.dimension, info.task_type or "")
            store = EmbeddingStore(cache_dir / STORE_FILE, namespace)
            await store.open()
        engine = EmbeddingEngine(
            provider,
            gate,
            retry,
            batch_size=params.concurrency.batch_size,
            memory=LruVectorCache(
                params.concurrency.cache_bytes(info.dimension, ENTRY_OVERHEAD_BYTES)
            ),
            store=store,
            seed=params.puzzle_generation.random_seed,
            budget=budget,
            refused=refused,
        )
        async with engine:
            yield engine
    finally:
        try:
            if budget is not None:
                _close_budget(budget)
        finally:
            try:
                if store is not None:
                    await store.close()
            finally:
                await provider.aclose()


def _close_budget(budget: DailyBudget) -> None:
    budget.close()
    figures = budget.statistics()
    log.info(
        "Requests on %s (Pacific time): %d of gemini.requests_per_day %d -> %s",
        figures.day.isoformat(),
        figures.requests,
        figures.limit,
        budget.path,
    )
