"""From a batchEmbedContents answer to a checked float32 matrix: pure, cheap to import.

At 3072 dimensions an answer of 100 vectors is about 4.3 MB of JSON, and decoding
it costs 10 to 60 ms of CPU that holds the GIL. `vectors_from_answer` is a plain
function of bytes so that the REST transport can run it in a process pool
(`RestTransport.decode_in`), off the event loop; a spawned worker unpickling it
imports this module, which needs only numpy, msgspec, `asyncpipe.errors` and
`asyncpipe.puzzle.vectors` (no httpx, no settings, no SDK).

msgspec decodes each vector to a list of floats and numpy turns the whole
batch into one (n, D) array in one call: measured against tuples, untyped
decoding, filling rows one by one and parsing each `values` array with numpy,
this was as fast or faster (about 0.1 ms a vector at 3072 dimensions).

`checked_vectors` is the check every Gemini answer passes, whichever transport
brought it. Errors are asyncpipe's own (`RetryableEmbeddingError`), which
survive the trip back from a worker process. Not here: the HTTP request and
the status codes (`gemini_rest`, `gemini_errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from asyncpipe.errors import RetryableEmbeddingError
from asyncpipe.puzzle.vectors import unit_rows

#: The only output size the API returns already normalised.
FULL_DIMENSION = 3072


class _Embedding(msgspec.Struct, gc=False):
    values: list[float]


class _BatchAnswer(msgspec.Struct, gc=False):
    embeddings: list[_Embedding]


_DECODER = msgspec.json.Decoder(_BatchAnswer)


def vectors_from_answer(content: bytes, expected_count: int, dimension: int) -> np.ndarray:
    """The answer's vectors as a checked float32 (expected_count, dimension) matrix."""
    try:
        answer = _DECODER.decode(content)
    except msgspec.DecodeError as error:
        raise RetryableEmbeddingError(f"the answer is not an embedding batch ({error})") from None
    return checked_vectors(
        [embedding.values for embedding in answer.embeddings], expected_count, dimension
    )


def checked_vectors(
    values: Sequence[Any] | np.ndarray, expected_count: int, dimension: int
) -> np.ndarray:
    """One finite vector of `dimension` per text, unit length; else a retryable error."""
    if len(values) != expected_count:
        raise RetryableEmbeddingError(
            f"the answer holds {len(values)} vectors for {expected_count} texts"
        )
    try:
        matrix = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise RetryableEmbeddingError("the answer holds vectors of unequal sizes") from None
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise RetryableEmbeddingError(
            f"the answer holds vectors of shape {matrix.shape[1:]}, expected ({dimension},)"
        )
    if not np.isfinite(matrix).all():
        raise RetryableEmbeddingError("the answer holds non-finite values")
    if not matrix.any(axis=1).all():
        raise RetryableEmbeddingError("the answer holds a zero vector")
    if dimension == FULL_DIMENSION:
        return matrix
    return unit_rows(matrix, np.float32)
