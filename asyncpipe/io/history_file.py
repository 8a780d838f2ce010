"""The history file (`paths.history`): one JSON line per complete batch, appended atomically.

    {"history": 1, "batch": "sha256:...", "set_name": null, "random_seed": 42,
     "groups": [{"category": "Trees", "tiles": ["oak", "elm", "ash", "pine"]}, ...]}

`batch` is the digest of the batch's final_puzzles.json, so the same batch made
twice is recognised and recorded once. Appending writes the whole new file to a
temporary sibling and renames it into place (`asyncpipe.io.files.atomic_writer`):
a kill or a full disk leaves the previous history whole, never a torn line. A
line that is not such a record (a hand edit gone wrong) is an `InputError`
naming the file and the line: the history decides what players see next, so a
damaged one is not silently skipped. What the history means is
`asyncpipe.puzzle.history`'s business.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncpipe.errors import InputError
from asyncpipe.io.files import atomic_writer, read_input
from asyncpipe.puzzle.history import History, PublishedBatch, PublishedGroup

FORMAT_VERSION = 1


def read_history(path: Path) -> History:
    """The batches recorded at `path`, oldest first; an empty history when there is no file."""
    data = read_input(
        path,
        missing=None,
        unreadable=lambda error: f"{path}: cannot read the history ({error.strerror})",
    )
    if data is None:
        return History()
    batches: list[PublishedBatch] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            batches.append(_batch(json.loads(line.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _damaged(path, number, "not a line of JSON") from None
        except (TypeError, KeyError, ValueError) as error:
            raise _damaged(path, number, f"not a history record ({error})") from None
    return History(tuple(batches), hashlib.sha256(data).hexdigest())


def append_batch(path: Path, batch: PublishedBatch) -> bool:
    """Add the batch to the history at `path`, unless its last line is that batch already.

    Returns whether a line was added. The file is rewritten whole and renamed
    into place, so a reader sees the old history or the new one.
    """
    history = read_history(path)
    if history.batches and history.batches[-1].batch == batch.batch:
        return False
    previous = path.read_bytes() if history.batches else b""
    if previous and not previous.endswith(b"\n"):
        previous += b"\n"  # a hand edit without a last newline: keep the lines apart
    line = json.dumps(batch_json(batch), ensure_ascii=False, separators=(",", ":")) + "\n"
    with atomic_writer(path, "wb") as handle:
        handle.write(previous + line.encode("utf-8"))
    return True


def batch_json(batch: PublishedBatch) -> dict[str, Any]:
    return {
        "history": FORMAT_VERSION,
        "batch": batch.batch,
        "set_name": batch.set_name,
        "random_seed": batch.random_seed,
        "groups": [{"category": g.category, "tiles": list(g.tiles)} for g in batch.groups],
    }


def published_batch(
    final_puzzles: bytes,
    groups: Sequence[tuple[str, Sequence[str]]],
    set_name: str | None,
    random_seed: int | None,
) -> PublishedBatch:
    """The record of a batch: its id is the digest of its final_puzzles.json bytes."""
    return PublishedBatch(
        batch="sha256:" + hashlib.sha256(final_puzzles).hexdigest(),
        groups=tuple(PublishedGroup(theme, tuple(tiles)) for theme, tiles in groups),
        set_name=set_name,
        random_seed=random_seed,
    )


def _batch(record: Any) -> PublishedBatch:
    if not isinstance(record, dict):
        raise TypeError("expected a JSON object")
    if record.get("history") != FORMAT_VERSION:
        raise ValueError(f'"history" must be {FORMAT_VERSION}')
    batch = record["batch"]
    set_name = record.get("set_name")
    seed = record.get("random_seed")
    if not isinstance(batch, str):
        raise TypeError('"batch" must be a string')
    if set_name is not None and not isinstance(set_name, str):
        raise TypeError('"set_name" must be a string or null')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError('"random_seed" must be a whole number or null')
    groups = record["groups"]
    if not isinstance(groups, list):
        raise TypeError('"groups" must be a list')
    return PublishedBatch(batch, tuple(_group(group) for group in groups), set_name, seed)


def _group(record: Any) -> PublishedGroup:
    if not isinstance(record, dict):
        raise TypeError("each group must be a JSON object")
    category, tiles = record["category"], record["tiles"]
    if not isinstance(category, str) or not category:
        raise TypeError('a group\'s "category" must be a name')
    if not isinstance(tiles, list) or not tiles or not all(isinstance(t, str) for t in tiles):
        raise TypeError('a group\'s "tiles" must be a list of words')
    return PublishedGroup(category, tuple(tiles))


def _damaged(path: Path, number: int, problem: str) -> InputError:
    return InputError(
        f"{path}, line {number}: damaged history, {problem}; repair or remove that line "
        "(paths.history, --history)"
    )
