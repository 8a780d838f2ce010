"""The protocol every embedding provider implements, and what it says about itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ProviderInfo:
    """What a run records about the provider: enough to know which vectors it made."""

    name: str
    model: str
    dimension: int
    task_type: str | None = None
    #: A local provider has no quota and nothing worth keeping on disk between runs.
    local: bool = False


class EmbeddingProvider(Protocol):
    """Turns texts into unit-length float32 vectors, one row per text, in order.

    Implementations raise `asyncpipe.errors.EmbeddingError` subclasses: the
    retryable ones for failures worth trying again, the fatal ones otherwise.
    """

    @property
    def info(self) -> ProviderInfo: ...

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    async def aclose(self) -> None: ...


class Answer(Protocol):
    """One request's answer, received but perhaps not decoded yet."""

    async def vectors(self) -> np.ndarray:
        """The checked matrix, one row per text sent; raises as `embed` would."""
        ...


@dataclass(frozen=True, slots=True)
class Decoded:
    """An answer that was decoded as it was received."""

    matrix: np.ndarray

    async def vectors(self) -> np.ndarray:
        return self.matrix


@runtime_checkable
class ReceivesBeforeDecoding(Protocol):
    """A provider whose answers can be received in one step and decoded in the next.

    The engine holds a request slot only while an answer is on its way: decoding a
    3072-value answer costs 10 to 60 ms of a worker's CPU, and with the slot held that
    long, each wave of requests waited for the last decode of the wave before it.
    """

    async def receive(self, texts: Sequence[str]) -> Answer: ...
