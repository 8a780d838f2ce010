"""Writing the files the puzzle app and the data pipeline read, atomically.

Every file is written to a temporary file in its own folder, flushed to disk,
and renamed into place: a reader sees the old file or the new one, never half
of one, and a crash mid-write leaves the previous version. Failures to write
become `OutputError` with the path and the reason, never a traceback.

The embedding tables keep the older pipeline's CSV columns
(theme, word, word_type, similarity_to_theme, rank, embedding_dim_1..D), or
the same columns as Parquet with one float32 list column for the vector.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from asyncpipe.errors import InputError, OutputError


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path`; on success fsync it and rename it over `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({_reason(error, path)})") from None
    try:
        with os.fdopen(
            descriptor,
            mode,
            encoding=None if "b" in mode else "utf-8",
            newline=None if "b" in mode else "",
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; the app and the data pipeline read these files: give them
        # the mode an ordinary open() would have given (0666 less the umask).
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise OutputError(f"{path}: cannot write ({_reason(error, path)})") from None
    except BaseException:
        _remove_quietly(temporary)
        raise


def ensure_writable(folders: Iterable[Path]) -> None:
    """Create each folder and prove a file can be written in it, or raise `OutputError`.

    Called before the work, so an output folder that cannot be written is found
    in a second, not after an hour of paid embedding requests.
    """
    for folder in dict.fromkeys(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor, probe = tempfile.mkstemp(prefix=".asyncpipe-probe.", dir=folder)
            os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            raise OutputError(
                f"{folder}: cannot write ({_reason(error, folder / 'probe')})"
            ) from None


def write_json(path: Path, document: Any) -> None:
    """Write JSON with a stable layout (two-space indent, UTF-8, trailing newline)."""
    try:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise OutputError(f"{path}: cannot encode as JSON ({error})") from None
    with atomic_writer(path) as handle:
        handle.write(text)


#: The stage that writes each stage input `read_json` is asked for, by its description.
STAGE_WRITING = {"selected themes": "select-themes", "candidate words": "select-candidates"}


def read_json(path: Path, what: str, stage: str | None = None) -> Any:
    """Read a JSON input of a stage, with one clear line when it is missing or broken.

    `stage` is the command that writes the file (by default looked up in
    `STAGE_WRITING`): the message says to run it.
    """
    writer = stage or STAGE_WRITING.get(what)
    first = (
        f"run `asyncpipe {writer}` first (or `asyncpipe run`, which runs every stage)"
        if writer
        else "run the stage that writes it first"
    )
    again = f"run `asyncpipe {writer}` again to rewrite it" if writer else "write it again"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found; {first}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {what} is a directory, expected a JSON file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read {what} ({_reason(error, path)})") from None
    if not data.strip():
        raise InputError(f"{path}: {what} file is empty; {again}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: {what} file is not UTF-8 text (bad byte at offset {error.start}), "
            f"so not a file asyncpipe wrote; {again}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated")
        damage = (
            "it ends early, probably truncated"
            if truncated
            else f"{error.msg} at column {error.colno}"
        )
        raise InputError(
            f"{path}, line {error.lineno}: {what} file is not valid JSON: {damage}; {again}"
        ) from None


@dataclass(frozen=True)
class EmbeddingRows:
    """Rows of an embedding table: one text each, with its vector."""

    themes: Sequence[str]
    words: Sequence[str]
    word_types: Sequence[str]
    similarities: Sequence[float]
    ranks: Sequence[int]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.themes)
        lengths = {len(self.words), len(self.word_types), len(self.similarities), len(self.ranks)}
        if lengths != {count} or self.vectors.shape[0] != count:
            raise ValueError("embedding table columns differ in length")


def write_embedding_table(
    path: Path,
    blocks: Iterable[EmbeddingRows],
    dimension: int,
    table_format: str,
    precision: int,
) -> None:
    """Write an embedding table block by block, so memory holds one block, not the table."""
    if table_format == "parquet":
        _write_parquet_table(path, blocks, dimension)
    else:
        _write_csv_table(path, blocks, dimension, precision)


def _write_csv_table(
    path: Path, blocks: Iterable[EmbeddingRows], dimension: int, precision: int
) -> None:
    header = ["theme", "word", "word_type", "similarity_to_theme", "rank"]
    header += [f"embedding_dim_{index}" for index in range(1, dimension + 1)]
    number = f"%.{precision}f"
    # One %-format per row is the fastest pure-Python way to print many floats.
    vector_format = "," + ",".join([number] * dimension) if dimension else ""
    with atomic_writer(path) as handle:
        handle.write(",".join(header) + "\n")
        for rows in blocks:
            _check_dimension(rows, dimension, path)
            for position in range(len(rows.themes)):
                fields = (
                    _csv_field(rows.themes[position]),
                    _csv_field(rows.words[position]),
                    rows.word_types[position],
                    number % rows.similarities[position],
                    str(rows.ranks[position]),
                )
                vector = vector_format % tuple(rows.vectors[position].tolist()) if dimension else ""
                handle.write(",".join(fields) + vector + "\n")


#: Rows gathered into one Parquet row group: small groups make slow reads.
_ROW_GROUP_ROWS = 4096


def _write_parquet_table(path: Path, blocks: Iterable[EmbeddingRows], dimension: int) -> None:
    import pyarrow as arrow
    import pyarrow.parquet as parquet

    # No dimension (no rows at all): a plain list column reads back the same.
    vector_type = (
        arrow.list_(arrow.float32(), dimension) if dimension else arrow.list_(arrow.float32())
    )
    schema = arrow.schema(
        [
            ("theme", arrow.string()),
            ("word", arrow.string()),
            ("word_type", arrow.string()),
            ("similarity_to_theme", arrow.float64()),
            ("rank", arrow.int32()),
            ("embedding", vector_type),
        ]
    )

    def table_of(group: list[EmbeddingRows]) -> Any:
        vectors = np.concatenate([np.asarray(rows.vectors, dtype=np.float32) for rows in group])
        flat = arrow.array(np.ascontiguousarray(vectors).reshape(-1), arrow.float32())
        embedding = (
            arrow.FixedSizeListArray.from_arrays(flat, dimension)
            if dimension
            else arrow.array([[] for _ in range(len(vectors))], vector_type)
        )
        columns = [
            arrow.array([text for rows in group for text in rows.themes], arrow.string()),
            arrow.array([text for rows in group for text in rows.words], arrow.string()),
            arrow.array([text for rows in group for text in rows.word_types], arrow.string()),
            arrow.array([v for rows in group for v in rows.similarities], arrow.float64()),
            arrow.array([v for rows in group for v in rows.ranks], arrow.int32()),
            embedding,
        ]
        return arrow.Table.from_arrays(columns, schema=schema)

    with atomic_writer(path, "wb") as handle, parquet.ParquetWriter(handle, schema) as writer:
        group: list[EmbeddingRows] = []
        size = 0
        for rows in blocks:
            _check_dimension(rows, dimension, path)
            group.append(rows)
            size += len(rows.themes)
            if size >= _ROW_GROUP_ROWS:
                writer.write_table(table_of(group))
                group, size = [], 0
        if group:
            writer.write_table(table_of(group))


def _check_dimension(rows: EmbeddingRows, dimension: int, path: Path) -> None:
    if len(rows.themes) and (rows.vectors.ndim != 2 or rows.vectors.shape[1] != dimension):
        raise ValueError(f"{path}: vectors of shape {rows.vectors.shape}, table has {dimension}")


def _csv_field(text: str) -> str:
    if any(character in text for character in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _read_umask() -> int:
    # Reading the umask means setting it: done once at import, before any thread starts.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


#: What some errors mean when writing a file, in words a person acts on.
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large: the file system's or the process's file size limit "
    "(ulimit -f) was reached",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _reason(error: OSError, path: Path | None = None) -> str:
    if error.errno == errno.ENOTDIR and path is not None:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    return error.strerror or str(error)


def _file_in_the_way(path: Path) -> Path | None:
    """The first folder on the way to `path` that exists as something other than a folder."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
