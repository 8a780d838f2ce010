"""Writing a vector index in the older pipeline's format, for tests that need one on disk.

It writes the format as `asyncpipe.io.vector_index`'s docstring describes it,
independently of the reader, so a reader that drifted from the format fails.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from asyncpipe.io.vector_index import LEGACY_METADATA, LEGACY_VECTORS, LEGACY_VOCABULARY

#: Little-endian uint32 count, uint32 dimension.
_HEADER = struct.Struct("<II")


def write_legacy_index(folder: Path, words: list[str], vectors: np.ndarray) -> None:
    """Write `words` and their `vectors` (row for row) as an older-format index in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.ascontiguousarray(vectors, dtype="<f4")
    with open(folder / LEGACY_VECTORS, "wb") as handle:
        handle.write(_HEADER.pack(*matrix.shape))
        handle.write(matrix.tobytes())
    (folder / LEGACY_VOCABULARY).write_text(json.dumps(words), encoding="utf-8")
    (folder / LEGACY_METADATA).write_text(
        json.dumps({"count": len(words), "dimension": int(matrix.shape[1])}), encoding="utf-8"
    )
