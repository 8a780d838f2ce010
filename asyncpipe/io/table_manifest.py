"""When the all-embeddings table need not be written again: a small manifest beside it.

The table is the largest output by far (hundreds of MB at 3072 dimensions) and a
rerun of the same batch would write the very same bytes. What fixes its content
is known without its vectors: the table's format and precision, the provider's
namespace, and each theme's texts, cosines and ranks; a text's vector under one
namespace never changes once stored, and the offline provider's are fixed. So
the manifest records a fingerprint of those and the size of the table written;
a run whose fingerprint matches, whose table is still that size, and that wrote
nothing to the store (a vector written anew may differ) leaves the table alone.

The manifest is removed before a table is written and written after it is in
place, so a kill in between leaves no manifest, and the next run writes the table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from asyncpipe.io.files import write_json
from asyncpipe.puzzle.embedded import EmbeddedTheme, ThemeRecord


def manifest_path(table: Path) -> Path:
    return table.with_name(table.name + ".manifest.json")


def table_fingerprint(
    embedded: Mapping[str, EmbeddedTheme | ThemeRecord], settings: Mapping[str, object]
) -> str:
    """sha256 of what the table holds, vectors aside: `settings` (format, precision,
    provider namespace) and every theme's texts, cosines and ranking, in table order."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for theme, result in embedded.items():
        digest.update(json.dumps([theme, result.candidate_words]).encode())
        digest.update(np.asarray(result.candidate_scores, dtype="<f8").tobytes())
        digest.update(np.asarray(result.ranked_rows, dtype="<i8").tobytes())
    return digest.hexdigest()


def up_to_date(table: Path, fingerprint: str) -> bool:
    """The table in place is the one this fingerprint describes; a missing or unreadable
    manifest, or a table of another size, is not (and is never an error)."""
    try:
        manifest = json.loads(manifest_path(table).read_text(encoding="utf-8"))
        return bool(
            manifest.get("fingerprint") == fingerprint
            and manifest.get("bytes") == table.stat().st_size
        )
    except (OSError, ValueError, AttributeError):
        return False


def forget(table: Path) -> None:
    """Remove the manifest before the table is rewritten."""
    manifest_path(table).unlink(missing_ok=True)


def record(table: Path, fingerprint: str) -> None:
    """Write the manifest of the table just written."""
    write_json(manifest_path(table), {"fingerprint": fingerprint, "bytes": table.stat().st_size})
