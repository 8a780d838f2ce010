"""Stage 3's first part in batch mode: the run's texts embedded by Batch API jobs.

Run before the puzzles are made, on an event loop of its own: it opens the embedding
store and a google-genai client, hands them to `batch_jobs.BatchEmbedding`, and closes
both whatever happens. `run_texts` says which texts: those of every theme the run
may draw (its spares too) and of their candidates, under the engine's keys, so
that the rounds that follow find all of them in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    `adopt_since`: when the run that may have left unrecorded jobs started (the one
    resumed, or the one a fresh run replaces): those created since are adopted where
    their labels match."""
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
                        return await batch.run(texts, resumed_since=adopt_since)
                    return await batch.run(
                        texts, recorded.batch_jobs, recorded.batch_ends, adopt_since
                    )
    finally:
        try:
            await store.close()
        finally:
            await api.aclose()
