"""The persistent embedding store: vectors that survive the run, so a rerun calls no API.

An SQLite file in the `paths.cache` folder, in WAL mode: every write is a
transaction, so a kill at any moment leaves the last committed state and no
corruption. One thread owns the connection and does every read and write
(a one-worker executor), so the store has exactly one writer and the event
loop only ever awaits a future: no lock is held across an await.

Rows are keyed by namespace (model, dimension, task type) and normalised text;
vectors are stored as little-endian float32 bytes, checked for length on read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asyncpipe.embeddings.cache import Namespace
from asyncpipe.errors import OutputError

STORE_FILE = "embeddings.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    namespace TEXT NOT NULL,
    text      TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (namespace, text)
) WITHOUT ROWID
"""
#: SQLite's default limit on host parameters is 999 in older builds.
_LOOKUP_CHUNK = 900


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """A snapshot of an `EmbeddingStore`'s figures, from `EmbeddingStore.statistics()`."""

    #: The SQLite file.
    path: Path
    #: Texts looked up and found (a sound row of this namespace).
    hits: int
    #: Texts looked up and not found, corrupt rows included.
    misses: int
    #: Vectors written (and committed).
    written: int
    #: Rows found but unusable (wrong length, non-finite values): treated as missing,
    #: and overwritten when their text is embedded again.
    corrupt_rows: int


class EmbeddingStore:
    """Async facade over one SQLite file; all work runs on the store's own thread."""

    def __init__(self, path: Path, namespace: Namespace) -> None:
        self._path = path
        self._namespace = str(namespace)
        self._dimension = namespace.dimension
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-store")
        self._connection: sqlite3.Connection | None = None
        # Counted on the event loop's side only; the store's thread returns what it saw.
        self._hits = 0
        self._misses = 0
        self._written = 0
        self._corrupt_rows = 0

    async def open(self) -> None:
        await self._call(self._open)

    async def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors among `texts` (absent ones are simply missing)."""
        if not texts:
            return {}
        found, corrupt = await self._call(self._get_many, list(texts))
        self._hits += len(found)
        self._misses += len(texts) - len(found)
        self._corrupt_rows += corrupt
        return found

    async def absent(self, texts: Sequence[str]) -> list[str]:
        """The texts of `texts` the store has no row for, in order; reads no vector.

        Not counted as lookups: nothing is fetched. A corrupt row counts as present
        here; `get_many` finds it corrupt when its text is asked for.
        """
        if not texts:
            return []
        present = await self._call(self._present, list(texts))
        return [text for text in texts if text not in present]

    async def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors in one transaction (committed before this returns).

        The vectors become bytes on the store's thread: for a batch of 3072-value
        vectors that is some 3 ms of the event loop's time otherwise, in its lag.
        """
        rows = list(items)
        if rows:
            await self._call(self._put_many, rows)
            self._written += len(rows)

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            path=self._path,
            hits=self._hits,
            misses=self._misses,
            written=self._written,
            corrupt_rows=self._corrupt_rows,
        )

    async def _call(self, function, *arguments):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *arguments)

    # Everything below runs on the store's thread only.

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self._path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a killed process loses nothing committed; only a power
            # cut can drop the last transactions, and never corrupts the file.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
        except sqlite3.Error as error:
            raise OutputError(f"{self._path}: cannot open the embedding store ({error})") from None
        except OSError as error:
            raise OutputError(
                f"{self._path}: cannot create the embedding store ({error})"
            ) from None
        self._connection = connection

    def _get_many(self, texts: list[str]) -> tuple[dict[str, np.ndarray], int]:
        """The sound vectors found among `texts`, and how many rows found were corrupt."""
        expected_bytes = self._dimension * 4
        found: dict[str, np.ndarray] = {}
        corrupt = 0
        for text, blob in self._rows_of(texts, "text, vector"):
            if len(blob) != expected_bytes:
                corrupt += 1
                continue
            vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            if np.isfinite(vector).all():
                found[text] = vector
            else:
                corrupt += 1
        return found, corrupt

    def _present(self, texts: list[str]) -> set[str]:
        return {text for (text,) in self._rows_of(texts, "text")}

    def _rows_of(self, texts: list[str], columns: str) -> Iterator[tuple[Any, ...]]:
        """`columns` of this namespace's rows among `texts`, in queries of `_LOOKUP_CHUNK`."""
        connection = self._require()
        for start in range(0, len(texts), _LOOKUP_CHUNK):
            chunk = texts[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from connection.execute(
                f"SELECT {columns} FROM vectors WHERE namespace = ? AND text IN ({marks})",
                [self._namespace, *chunk],
            )

    def _put_many(self, rows: list[tuple[str, np.ndarray]]) -> None:
        connection = self._require()
        try:
            with connection:
                connection.execute("BEGIN")
                connection.executemany(
                    "INSERT OR REPLACE INTO vectors (namespace, text, vector) VALUES (?, ?, ?)",
                    [
                        (self._namespace, text, np.asarray(vector, dtype="<f4").tobytes())
                        for text, vector in rows
                    ],
                )
        except sqlite3.Error as error:
            raise OutputError(f"{self._path}: cannot write the embedding store ({error})") from None

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _require(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the embedding store is not open")
        return self._connection
