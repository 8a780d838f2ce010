"""Choosing the embedding provider for a run: `--provider auto|glove|gemini`.

`auto` means Gemini when the key variable named in `gemini.api_key_env` is set,
else the offline GloVe provider; the choice and its reason are returned so the
run can log them (never the key itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from asyncpipe.config import Params
from asyncpipe.embeddings.glove import GloveProvider
from asyncpipe.embeddings.provider import EmbeddingProvider
from asyncpipe.errors import ConfigError
from asyncpipe.vocabulary import VocabularyIndex

ProviderChoice = Literal["auto", "glove", "gemini"]
PROVIDER_CHOICES: tuple[ProviderChoice, ...] = ("auto", "glove", "gemini")


@dataclass(frozen=True)
class ChosenProvider:
    provider: EmbeddingProvider
    reason: str


def choose_provider(
    choice: ProviderChoice,
    params: Params,
    index: VocabularyIndex,
    environment: Mapping[str, str] | None = None,
) -> ChosenProvider:
    environment = os.environ if environment is None else environment
    key_variable = params.gemini.api_key_env
    has_key = bool(environment.get(key_variable))
    if choice == "gemini" or (choice == "auto" and has_key):
        if not has_key:
            raise ConfigError(
                f"provider gemini needs an API key in the environment variable {key_variable}"
            )
        if choice == "auto":
            return ChosenProvider(
                GloveProvider(index),
                f"{key_variable} is set, but the gemini provider is not available yet: using glove",
            )
        raise ConfigError(
            "provider gemini is not available yet in this version; use --provider glove"
        )
    reason = "requested" if choice == "glove" else f"{key_variable} is not set"
    return ChosenProvider(GloveProvider(index), f"glove ({reason})")
