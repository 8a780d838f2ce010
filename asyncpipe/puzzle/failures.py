"""Why a theme is not in the batch: a kind to act on, and a reason for people.

Pure values. The candidate search, the check for enough candidates, the
embedding stage, the assembly and the rebuild of poor puzzles each report the
themes they give up as `ThemeFailure`s; the run merges them into one mapping
for the metadata and the log. Code decides from `kind` (what to warn about,
what a resumed run tries again); `reason` is only ever shown.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class FailureKind(enum.Enum):
    #: The candidate search found no word for it, or it was never searched.
    NO_CANDIDATES = "no_candidates"
    #: The theme names no category of the lexicon, and `candidates.not_a_category`
    #: says to replace such a theme with a spare.
    NOT_A_CATEGORY = "not_a_category"
    #: Fewer candidates (or distinct ones) than a group needs.
    TOO_FEW_CANDIDATES = "too_few_candidates"
    #: The provider refuses one of its texts: trying again cannot help.
    UNEMBEDDABLE_TEXT = "unembeddable_text"
    #: The API kept failing with retryable errors after the engine's retries.
    API_FAILED = "api_failed"
    #: The least coherent group of a puzzle below the quality bar, dropped to rebuild it.
    DROPPED_BY_REBUILD = "dropped_by_rebuild"

    @property
    def embedding(self) -> bool:
        """The theme could not be embedded (the API failing, a text it refuses)."""
        return self in (FailureKind.UNEMBEDDABLE_TEXT, FailureKind.API_FAILED)

    @property
    def retryable(self) -> bool:
        """A later run may succeed where this one failed: a resumed run tries it again."""
        return self is FailureKind.API_FAILED


@dataclass(frozen=True, slots=True)
class ThemeFailure:
    kind: FailureKind
    #: What happened, in words, for the log and the metadata.
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "reason": self.reason}

    @classmethod
    def from_json(cls, document: Any) -> ThemeFailure:
        """The inverse of `to_json`; ValueError, TypeError or KeyError for anything else."""
        if not isinstance(document, Mapping):
            raise TypeError(f"a theme failure is an object, not {type(document).__name__}")
        reason = document["reason"]
        if not isinstance(reason, str):
            raise TypeError(f"a theme failure's reason is text, not {type(reason).__name__}")
        return cls(FailureKind(document["kind"]), reason)


def failures_json(failures: Mapping[str, ThemeFailure]) -> dict[str, dict[str, str]]:
    """Theme -> {"kind", "reason"}, in the mapping's order."""
    return {theme: failure.to_json() for theme, failure in failures.items()}
