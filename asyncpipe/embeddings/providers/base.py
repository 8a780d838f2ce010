"""The protocol every embedding provider implements, and what it says about itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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
