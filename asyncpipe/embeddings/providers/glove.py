"""The offline provider: GloVe vectors from the vocabulary index, no network, no key.

A text's vector is the mean of its words' vectors, normalised, the same rule
the candidate search uses for themes, so offline runs rank candidates
consistently with how they were found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from asyncpipe.embeddings.providers.base import ProviderInfo
from asyncpipe.errors import UnembeddableTextError
from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.vectors import unit_rows


class GloveProvider:
    """Embeds texts by averaging index vectors; raises for a text it has no word of."""

    def __init__(self, index: VocabularyIndex) -> None:
        self._index = index
        self._info = ProviderInfo(
            name="glove", model=index.name, dimension=index.dimension, local=True
        )

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        matrix = np.empty((len(texts), self._index.dimension), dtype=np.float32)
        for position, text in enumerate(texts):
            # Candidates are index words: take their row directly; themes need the mean.
            row = self._index.row_of(text)
            matrix[position] = self._index.vectors[row] if row is not None else self._mean_of(text)
        nonzero = matrix.any(axis=1)
        if not nonzero.all():
            zero = texts[int(np.flatnonzero(~nonzero)[0])]
            raise UnembeddableTextError(f"the vector of {zero!r} is zero")
        return unit_rows(matrix, np.float32)

    async def aclose(self) -> None:
        return None

    def _mean_of(self, text: str) -> np.ndarray:
        mean = self._index.text_vector(text)
        if mean is None:
            raise UnembeddableTextError(f"no word of {text!r} is in the index {self._index.name!r}")
        return mean
