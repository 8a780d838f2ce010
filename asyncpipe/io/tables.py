"""The embedding tables: every embedded text with its vector, as CSV or Parquet.

They keep the older pipeline's CSV columns (theme, word, word_type,
similarity_to_theme, rank, embedding_dim_1..D), or the same columns as Parquet
with one float32 list column for the vector. Both are written block by block
through `asyncpipe.io.files.atomic_writer`, so memory holds one block and a
reader never sees half a table.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asyncpipe.io.files import atomic_writer


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


#: Vector values gathered before they are printed at once (about 8 MB of float64):
#: printing one theme's rows at a time would cost one pyarrow array per dimension
#: per theme; the whole table at once would hold it all.
_CSV_CHUNK_VALUES = 1_000_000
#: Chunks printed at once, each in its own thread (pyarrow prints without the GIL),
#: and so the most held at a time: 1.4 to 1.8x faster on two cores than one at a time.
_CSV_PRINTERS = 2


def _write_csv_table(
    path: Path, blocks: Iterable[EmbeddingRows], dimension: int, precision: int
) -> None:
    """The older pipeline's CSV: the five leading fields as it printed them, the vector
    printed by pyarrow's C++ CSV writer, rounded to `precision` decimals first.

    pyarrow prints each rounded value in its shortest round-trip form (0.0123 rather
    than 0.012300, 1 for 1.0, 0 for either zero, and 0.000001, never 1e-06 at this
    precision), about 100 MB/s against some 15 MB/s for one Python %-format per row;
    every CSV reader parses both the same. Chunks are printed `_CSV_PRINTERS` at a
    time and written in their order, so the file is the same as one printed alone."""
    header = ["theme", "word", "word_type", "similarity_to_theme", "rank"]
    header += [f"embedding_dim_{index}" for index in range(1, dimension + 1)]
    number = f"%.{precision}f"
    chunk_rows = max(1, _CSV_CHUNK_VALUES // max(1, dimension))
    with (
        atomic_writer(path, "wb") as handle,
        ThreadPoolExecutor(_CSV_PRINTERS, thread_name_prefix="asyncpipe-csv") as printers,
    ):
        handle.write((",".join(header) + "\n").encode())
        printing: deque[tuple[list[bytes], Future[list[bytes]] | None]] = deque()
        leading: list[bytes] = []
        vectors: list[np.ndarray] = []
        held = 0

        def write_oldest() -> None:
            fields, tails = printing.popleft()
            vector_fields = tails.result() if tails is not None else None
            for position, row in enumerate(fields):
                handle.write(row)
                if vector_fields is not None:
                    handle.write(b",")
                    handle.write(vector_fields[position])
                handle.write(b"\n")

        def flush() -> None:
            nonlocal leading, vectors, held
            if not leading:
                return
            tails = (
                printers.submit(_vector_fields, np.concatenate(vectors), precision)
                if dimension
                else None
            )
            printing.append((leading, tails))
            leading, vectors, held = [], [], 0
            if len(printing) > _CSV_PRINTERS:
                write_oldest()

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
                leading.append(",".join(fields).encode())
            if len(rows.themes):
                vectors.append(np.asarray(rows.vectors).reshape(len(rows.themes), dimension))
                held += len(rows.themes)
            if held >= chunk_rows:
                flush()
        flush()
        while printing:
            write_oldest()


def _vector_fields(vectors: np.ndarray, precision: int) -> list[bytes]:
    """Each row's values, rounded and comma-separated, printed by pyarrow in one go."""
    import pyarrow as arrow
    import pyarrow.csv as arrow_csv

    # Column-major, so each column is one contiguous run pyarrow takes without a copy.
    rounded = np.array(vectors, dtype=np.float64, order="F")  # a copy, rounded in place
    np.round(rounded, precision, out=rounded)
    rounded += 0.0  # no -0: the older pipeline printed 0.000000 for -0.0000001
    columns = [arrow.array(rounded[:, column]) for column in range(rounded.shape[1])]
    table = arrow.Table.from_arrays(columns, names=[str(n) for n in range(len(columns))])
    buffer = io.BytesIO()
    arrow_csv.write_csv(table, buffer, arrow_csv.WriteOptions(include_header=False))
    lines = buffer.getvalue().split(b"\n")
    return lines[: len(vectors)]


#: Rows gathered into one Parquet row group, at most: small groups make slow reads.
_ROW_GROUP_ROWS = 4096
#: And at most this many bytes of vectors: a row group is held three times while it
#: is written (the blocks, their concatenation, pyarrow's encoding), so 4,096 rows
#: at 3072 dimensions were 150 MB at once, and 16 MiB groups still 30 MB of the
#: 3072-dimension run's peak. 4 MiB is 341 rows at 3072 dimensions, 1,365 at 768.
_ROW_GROUP_BYTES = 4 * 2**20


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

    group_rows = max(1, min(_ROW_GROUP_ROWS, _ROW_GROUP_BYTES // (4 * max(1, dimension))))
    # Dictionary encoding only where values repeat: tried on the vectors (the default),
    # it hashed every value of a row group for nothing, 4x slower and 40% more memory.
    dictionary = ["theme", "word", "word_type", "rank"]
    with (
        atomic_writer(path, "wb") as handle,
        parquet.ParquetWriter(handle, schema, use_dictionary=dictionary) as writer,
    ):
        group: list[EmbeddingRows] = []
        size = 0
        for rows in blocks:
            _check_dimension(rows, dimension, path)
            group.append(rows)
            size += len(rows.themes)
            if size >= group_rows:
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
