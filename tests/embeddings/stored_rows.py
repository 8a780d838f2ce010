"""Reading an embedding store's file behind its back, as another process would: a test's witness.

The store itself offers no count (the pipeline never needs one); a separate
SQLite connection also proves that what a test counts was committed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from asyncpipe.embeddings.cache import Namespace


def stored_rows(path: Path, namespace: Namespace | None = None) -> int:
    """Rows committed to the store at `path`: of `namespace`, or of every namespace."""
    connection = sqlite3.connect(path)
    try:
        if namespace is None:
            row = connection.execute("SELECT COUNT(*) FROM vectors").fetchone()
        else:
            row = connection.execute(
                "SELECT COUNT(*) FROM vectors WHERE namespace = ?", [str(namespace)]
            ).fetchone()
    finally:
        connection.close()
    return int(row[0])
