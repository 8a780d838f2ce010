"""Stage 3's first part in batch mode: the run's texts embedded by Batch API jobs.

Run before the puzzles are made, on an event loop of its own: it opens the embedding
store and a google-genai client, hands them to `batch_jobs.BatchEmbedding`, and closes
both whatever happens. `run_texts` says which texts: those of every theme the run
may draw (its spares too) and of their candidates, under the engine's keys, so
that the rounds that follow find all of them in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from asyncpipe.embeddings.batch_jobs import BatchEmbedding, BatchOutcome, JobLedger
from asyncpipe.embeddings.cache import Namespace, normalise_text
from asyncpipe.embeddings.providers.gemini_batch import BatchApi
from asyncpipe.embeddings.store import STORE_FILE, EmbeddingStore
from asyncpipe.run.checkpoint import Recorded
from asyncpipe.run.interrupt import Shutdown
from asyncpipe.run.job_progress import JobProgress
from asyncpipe.settings.sections import Params


def run_texts(themes: Sequence[str], usable: Mapping[str, Sequence[str]]) -> list[str]:
    """Every distinct text the run's rounds can ask for, in draw order, as engine keys."""
    return list(
        dict.fromkeys(
            normalise_text(text)
            for theme in themes
            if theme in usable
            for text in (theme, *usable[theme])
        )
    )


async def embed_by_batch(
    params: Params,
    api_key: str,
    texts: Sequence[str],
    cache_dir: Path,
    ledger: JobLedger,
    recorded: Recorded | None,
    shutdown: Shutdown,
    progress_bar: bool | None = None,
    adopt_since: float | None = None,
) -> BatchOutcome | None:
    """The batch phase (`BatchEmbedding.run`); None when `auto` mode chose online.

    `adopt_since`: a fresh run replacing a checkpoint whose jobs were still open, when
    that run started: the jobs it created since are adopted where their labels match."""
    gemini = params.gemini
    namespace = Namespace(gemini.model_id, gemini.embedding_dimension, gemini.task_type or "")
    store = EmbeddingStore(cache_dir / STORE_FILE, namespace)
    api = BatchApi(gemini, api_key)
    try:
        await store.open()
        with shutdown.announcing("no new job is created; the wait on the batch jobs ends"):
            async with shutdown.watching():
                with JobProgress(params.logging.progress_interval, bar=progress_bar) as progress:
                    batch = BatchEmbedding(api, store, ledger, gemini, shutdown, progress)
                    if recorded is None:
                        since = None if adopt_since is None else adopt_since - 1.0
                        return await batch.run(texts, resumed_since=since)
                    return await batch.run(
                        texts,
                        recorded.batch_jobs,
                        recorded.batch_ends,
                        _seconds(recorded.started_at),
                    )
    finally:
        try:
            await store.close()
        finally:
            await api.aclose()


def _seconds(started_at: str) -> float | None:
    """The checkpoint's start (ISO 8601, to the second) in seconds since the epoch, a
    second early for the rounding; None if it cannot be read."""
    try:
        return datetime.fromisoformat(started_at).timestamp() - 1.0
    except ValueError:
        return None
