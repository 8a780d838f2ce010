"""The embedding tables: every embedded text with its vector, as CSV or Parquet.

They keep the older pipeline's CSV columns (theme, word, word_type,
similarity_to_theme, rank, embedding_dim_1..D), or the same columns as Parquet
with one float32 list column for the vector. Both are written block by block
through `asyncpipe.io.files.atomic_writer`, so memory holds one block and a
reader never sees half a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
