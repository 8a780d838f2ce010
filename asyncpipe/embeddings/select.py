"""Choosing the embedding provider for a run: `--provider auto|glove|gemini`.

`auto` means Gemini when the key variable named in `gemini.api_key_env` is set,
else the offline GloVe provider. The choice is planned before any stage runs,
so a missing key stops the run at once rather than after two stages; the
provider itself is built when the enhance stage needs it, and only the offline
provider loads the vector index. The plan carries the key but never shows it
(its repr leaves it out).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from asyncpipe.embeddings.providers.base import EmbeddingProvider
from asyncpipe.embeddings.providers.glove import GloveProvider
from asyncpipe.errors import ConfigError
from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.settings.sections import Params

ProviderChoice = Literal["auto", "glove", "gemini"]
PROVIDER_CHOICES: tuple[ProviderChoice, ...] = ("auto", "glove", "gemini")


@dataclass(frozen=True)
class ProviderPlan:
    name: Literal["glove", "gemini"]
    reason: str
    api_key: str | None = field(default=None, repr=False)


def plan_provider(
    choice: ProviderChoice, params: Params, environment: Mapping[str, str] | None = None
) -> ProviderPlan:
    environment = os.environ if environment is None else environment
    key_variable = params.gemini.api_key_env
    api_key = environment.get(key_variable) or None
    if choice == "glove":
        return ProviderPlan("glove", "glove (requested)")
    if choice == "gemini" and api_key is None:
        raise ConfigError(
            f"provider gemini needs an API key in the environment variable {key_variable}"
        )
    if api_key is None:
        return ProviderPlan("glove", f"glove ({key_variable} is not set)")
    how = "requested" if choice == "gemini" else f"{key_variable} is set"
    return ProviderPlan(
        "gemini",
        f"gemini ({how}; model {params.gemini.model_id}, "
        f"{params.gemini.embedding_dimension} dimensions)",
        api_key,
    )


def build_provider(
    plan: ProviderPlan, params: Params, index: Callable[[], VocabularyIndex]
) -> EmbeddingProvider:
    """The planned provider. `index` is called for the offline provider only: Gemini
    embeds any text, and an older pipeline's 1 GB index folder may not even be there."""
    if plan.name == "glove":
        return GloveProvider(index())
    from asyncpipe.embeddings.providers.gemini import (
        GeminiProvider,  # imports the SDK: only when used
    )

    if plan.api_key is None:
        raise ConfigError(f"provider gemini needs an API key in {params.gemini.api_key_env}")
    return GeminiProvider(params.gemini, plan.api_key)
