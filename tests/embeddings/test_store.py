"""EmbeddingStore: real SQLite files in tmp_path, and a real writer process killed mid-write."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.embeddings.cache import Namespace
from asyncpipe.embeddings.store import STORE_FILE, EmbeddingStore
from asyncpipe.errors import OutputError
from tests.embeddings.stored_rows import stored_rows
from tests.support import REPO

NAMESPACE = Namespace("test-model", 16, "SEMANTIC_SIMILARITY")


def vectors(count: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)


async def opened(path: Path, namespace: Namespace = NAMESPACE) -> EmbeddingStore:
    store = EmbeddingStore(path, namespace)
    await store.open()
    return store


@pytest.mark.asyncio
async def test_vectors_come_back_bit_for_bit_as_float32(tmp_path: Path) -> None:
    store = await opened(tmp_path / STORE_FILE)
    texts = ["apple", "Musical instruments", "caf\u00e9", "x" * 300]
    stored = vectors(len(texts))
    stored[0, 0] = np.float32(1e-38)  # a denormal-adjacent value survives too
    try:
        await store.put_many(zip(texts, stored))
        found = await store.get_many([*texts, "absent"])
    finally:
        await store.close()

    assert set(found) == set(texts)
    for text, expected in zip(texts, stored):
        assert found[text].dtype == np.float32
        assert found[text].shape == (16,)
        np.testing.assert_array_equal(found[text], expected)


@pytest.mark.asyncio
async def test_writing_a_text_again_replaces_its_vector(tmp_path: Path) -> None:
    store = await opened(tmp_path / STORE_FILE)
    first, second = vectors(2)
    try:
        await store.put_many([("apple", first)])
        await store.put_many([("apple", second)])
        found = await store.get_many(["apple"])
        count = stored_rows(tmp_path / STORE_FILE)
    finally:
        await store.close()

    np.testing.assert_array_equal(found["apple"], second)
    assert count == 1


@pytest.mark.parametrize(
    "other",
    [
        Namespace("another-model", 16, "SEMANTIC_SIMILARITY"),
        Namespace("test-model", 8, "SEMANTIC_SIMILARITY"),
        Namespace("test-model", 16, "RETRIEVAL_QUERY"),
    ],
    ids=["model", "dimension", "task"],
)
@pytest.mark.asyncio
async def test_another_namespace_sees_none_of_the_stored_vectors(
    tmp_path: Path, other: Namespace
) -> None:
    path = tmp_path / STORE_FILE
    store = await opened(path)
    try:
        await store.put_many(zip(["apple", "pear"], vectors(2)))
    finally:
        await store.close()

    elsewhere = await opened(path, other)
    try:
        found = await elsewhere.get_many(["apple", "pear"])
        count = stored_rows(path, other)
    finally:
        await elsewhere.close()

    assert found == {}
    assert count == 0
    assert elsewhere.statistics().misses == 2


@pytest.mark.asyncio
async def test_a_row_of_the_wrong_length_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = await opened(path)
    await store.put_many(zip(["apple", "pear"], vectors(2)))
    with sqlite3.connect(path) as connection:
        connection.execute(
            "UPDATE vectors SET vector = ? WHERE text = 'pear'", [b"\x00" * (16 * 4 - 3)]
        )
    try:
        found = await store.get_many(["apple", "pear"])
    finally:
        await store.close()

    assert list(found) == ["apple"]
    assert store.statistics().corrupt_rows == 1
    assert store.statistics().hits == 1
    assert store.statistics().misses == 1


@pytest.mark.asyncio
async def test_a_row_holding_nan_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = await opened(path)
    bad = vectors(1)[0]
    bad[3] = np.nan
    try:
        await store.put_many([("apple", vectors(1)[0]), ("pear", bad)])
        found = await store.get_many(["apple", "pear"])
    finally:
        await store.close()

    assert list(found) == ["apple"]
    assert store.statistics().corrupt_rows == 1


@pytest.mark.asyncio
async def test_absent_lists_the_texts_without_a_row_in_order_and_counts_no_lookup(
    tmp_path: Path,
) -> None:
    path = tmp_path / STORE_FILE
    store = await opened(path)
    other = await opened(path, Namespace("another-model", 16, "SEMANTIC_SIMILARITY"))
    texts = [f"text {n}" for n in range(2000)]  # more than SQLite allows parameters
    try:
        await store.put_many(zip(texts[::3], vectors(len(texts[::3])), strict=True))
        absent = await store.absent(texts)
        elsewhere = await other.absent(texts[:10])
    finally:
        await store.close()
        await other.close()

    assert absent == [text for n, text in enumerate(texts) if n % 3]
    assert elsewhere == texts[:10]
    assert (store.statistics().hits, store.statistics().misses) == (0, 0)


@pytest.mark.asyncio
async def test_each_namespace_writes_its_own_rows_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    elsewhere = Namespace("another-model", 16, "SEMANTIC_SIMILARITY")
    store = await opened(path)
    other = await opened(path, elsewhere)
    try:
        assert stored_rows(path) == 0
        await store.put_many((f"text {n}", row) for n, row in enumerate(vectors(25)))
        await other.put_many([("apple", vectors(1)[0])])
        assert stored_rows(path, NAMESPACE) == 25
        assert stored_rows(path, elsewhere) == 1
    finally:
        await store.close()
        await other.close()
    assert store.statistics().written == 25
    assert other.statistics().written == 1


@pytest.mark.asyncio
async def test_lookups_of_more_texts_than_sqlite_allows_parameters_find_them_all(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / STORE_FILE)
    texts = [f"word {n}" for n in range(2500)]
    stored = vectors(len(texts))
    try:
        await store.put_many(zip(texts, stored))
        found = await store.get_many(texts)
    finally:
        await store.close()

    assert len(found) == 2500
    np.testing.assert_array_equal(np.stack([found[text] for text in texts]), stored)


@pytest.mark.asyncio
async def test_empty_reads_and_writes_do_nothing(tmp_path: Path) -> None:
    store = await opened(tmp_path / STORE_FILE)
    try:
        assert await store.get_many([]) == {}
        await store.put_many([])
        assert stored_rows(tmp_path / STORE_FILE) == 0
    finally:
        await store.close()

    statistics = store.statistics()
    assert (statistics.hits, statistics.misses, statistics.written) == (0, 0, 0)
    assert statistics.corrupt_rows == 0
    assert statistics.path == tmp_path / STORE_FILE


@pytest.mark.asyncio
async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "nested" / STORE_FILE  # missing folders are created
    texts = [f"theme {n}" for n in range(30)]
    stored = vectors(30, seed=5)
    store = await opened(path)
    try:
        await store.put_many(zip(texts, stored))
    finally:
        await store.close()

    again = await opened(path)
    try:
        found = await again.get_many(texts)
        count = stored_rows(path)
    finally:
        await again.close()

    assert count == 30
    np.testing.assert_array_equal(np.stack([found[text] for text in texts]), stored)


@pytest.mark.asyncio
async def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    store = await opened(path)
    await store.close()

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.asyncio
async def test_a_store_that_cannot_be_created_raises_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    store = EmbeddingStore(blocker / STORE_FILE, NAMESPACE)

    try:
        with pytest.raises(OutputError, match="not-a-folder"):
            await store.open()
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_using_a_store_before_open_is_an_error(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path / STORE_FILE, NAMESPACE)
    try:
        with pytest.raises(RuntimeError, match="not open"):
            await store.get_many(["apple"])
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_all_store_work_runs_on_one_thread_of_its_own(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = await opened(tmp_path / STORE_FILE)
    try:
        # Many operations at once: a pool of more than one worker would start more threads.
        await asyncio.gather(
            *(store.put_many([(f"text {n}", row)]) for n, row in enumerate(vectors(40))),
            *(store.get_many([f"text {n}"]) for n in range(40)),
            *(store.get_many([f"text {n}" for n in range(40)]) for _ in range(10)),
        )
        started = set(threading.enumerate()) - before
        # The connection belongs to the thread that opened it: sqlite3 would refuse
        # any operation from another thread, so every call above ran on that one.
        assert len(await store.get_many([f"text {n}" for n in range(40)])) == 40
    finally:
        await store.close()

    assert len(started) == 1
    (thread,) = started
    assert thread.name.startswith("embedding-store")
    assert thread is not threading.current_thread()
    assert not thread.is_alive()  # closing the store ends its thread


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path

    import numpy as np

    from asyncpipe.embeddings.cache import Namespace
    from asyncpipe.embeddings.store import EmbeddingStore

    DIMENSION, ROWS = int(sys.argv[2]), int(sys.argv[3])

    async def main() -> None:
        store = EmbeddingStore(Path(sys.argv[1]), Namespace("killed", DIMENSION, "T"))
        await store.open()
        transaction = 0
        while True:
            await store.put_many(
                (f"t{transaction} r{row}", np.full(DIMENSION, transaction + row / 1000, "f4"))
                for row in range(ROWS)
            )
            if transaction == 0:
                print("committed", flush=True)
            transaction += 1

    asyncio.run(main())
    """
)


def write_until_killed(path: Path, dimension: int, rows: int, delay: float) -> None:
    """Run a writer process committing `rows`-row transactions; SIGKILL it `delay` s after the first."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(dimension), str(rows)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stderr is not None
    try:
        assert writer.stdout.readline().strip() == "committed", writer.stderr.read()
        threading.Event().wait(delay)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=10)
        writer.stdout.close()
        writer.stderr.close()
    assert writer.returncode == -signal.SIGKILL


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_writer_killed_at_a_random_moment_leaves_a_sound_file_of_whole_transactions(
    tmp_path: Path, seed: int
) -> None:
    dimension, rows = 256, 60
    path = tmp_path / STORE_FILE
    delay = random.Random(seed).uniform(0.02, 0.4)

    write_until_killed(path, dimension, rows, delay)

    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = connection.execute("SELECT text, vector FROM vectors").fetchall()
    finally:
        connection.close()

    by_transaction: dict[int, list[int]] = {}
    for text, blob in stored:
        assert len(blob) == dimension * 4, f"row {text!r} is {len(blob)} bytes (delay {delay:.3f})"
        transaction, row = (int(part[1:]) for part in text.split())
        vector = np.frombuffer(blob, dtype="<f4")
        np.testing.assert_array_equal(vector, np.full(dimension, transaction + row / 1000, "f4"))
        by_transaction.setdefault(transaction, []).append(row)
    # Every transaction is all there or not at all, and none is missing before the last.
    assert by_transaction, f"nothing committed (delay {delay:.3f})"
    assert sorted(by_transaction) == list(range(len(by_transaction)))
    assert all(sorted(found) == list(range(rows)) for found in by_transaction.values())


def test_the_store_reopens_and_writes_after_its_writer_was_killed(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    write_until_killed(path, dimension=16, rows=20, delay=0.05)

    async def reopen() -> tuple[int, int, int, int]:
        store = await opened(path, Namespace("killed", 16, "T"))
        try:
            count = stored_rows(path)
            found = await store.get_many([f"t0 r{row}" for row in range(20)])
            await store.put_many([("after the kill", np.ones(16, np.float32))])
            return count, len(found), stored_rows(path), store.statistics().corrupt_rows
        finally:
            await store.close()

    count, found, count_after_write, corrupt = asyncio.run(reopen())

    assert count >= 20 and count % 20 == 0
    assert found == 20
    assert count_after_write == count + 1
    assert corrupt == 0
