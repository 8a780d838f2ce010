"""Reading the files one stage leaves for the next, when a stage runs alone.

`select-candidates` reads `selected_themes.json`, and `enhance` reads it and
`candidate_words.json`. A file that is not what it should be is an `InputError`
naming it and the stage that rewrites it.

Both files may come from the older pipeline, which wrote fewer fields. Only what the
stages need is required: the themes of a selection, and each theme's words. The rest
get fixed defaults, so reading a file twice gives the same selection and candidates
(and the same checkpoint digest), and one INFO line per file names what was defaulted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from asyncpipe.errors import InputError
from asyncpipe.io.files import read_json
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.candidates import CandidateSearchResult, ThemeCandidates
from asyncpipe.stages.themes import ThemeSelection

log = logging.getLogger(__name__)


def load_selection(workspace: Workspace) -> ThemeSelection:
    path = workspace.selected_themes
    document = read_json(path, "selected themes")
    try:
        selection = ThemeSelection.from_json(document)
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a selected-themes file (missing {error})") from None
    _log_defaults(path, ThemeSelection.defaulted_fields(document))
    return selection


def load_candidates(workspace: Workspace) -> CandidateSearchResult:
    path = workspace.candidate_words
    document = read_json(path, "candidate words", stage="select-candidates")
    entries = document.get("candidates") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise _not_candidates(path, "no mapping of themes under 'candidates'")
    without_scores: list[str] = []
    candidates: dict[str, ThemeCandidates] = {}
    for theme, entry in entries.items():
        candidates[theme] = _theme_candidates(path, theme, entry)
        if candidates[theme].source == "neighbours" and "similarity_scores" not in entry:
            without_scores.append(theme)
    metadata = document.get("metadata")
    defaulted = [] if isinstance(metadata, dict) else ["metadata"]
    if without_scores:
        defaulted.append(f"similarity_scores of {_themes_named(without_scores)}")
    _log_defaults(path, defaulted)
    failed = metadata.get("failed_themes") if isinstance(metadata, dict) else None
    kinds = metadata.get("failed_theme_kinds") if isinstance(metadata, dict) else None
    kinds = kinds if isinstance(kinds, dict) else {}
    # Files written before kinds were recorded keep only reasons: every theme the
    # search gave up then had no candidates.
    failed_themes = {
        theme: ThemeFailure(_failure_kind(kinds.get(theme)), reason)
        for theme, reason in _failed_reasons(failed)
    }
    return CandidateSearchResult(candidates=candidates, failed_themes=failed_themes)


def _failed_reasons(failed: object) -> list[tuple[str, str]]:
    """(theme, reason) of each failed theme: a mapping, or the older pipeline's list of
    {"theme", "reason"} objects."""
    if isinstance(failed, dict):
        return [(str(theme), str(reason)) for theme, reason in failed.items()]
    if isinstance(failed, list):
        return [
            (entry["theme"], str(entry.get("reason", "no candidates")))
            for entry in failed
            if isinstance(entry, dict) and isinstance(entry.get("theme"), str)
        ]
    return []


def _theme_candidates(path: Path, theme: str, entry: object) -> ThemeCandidates:
    """One theme's entry: members (words and their category) or neighbours.

    A neighbour entry without `similarity_scores` (not recorded) gets none: the enhance
    stage never reads them, it ranks by the provider's own cosines. Scores that are
    there must pair with the words, or the file is not what it claims to be.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("words"), list):
        raise _not_candidates(path, f"theme {theme!r} lacks a 'words' list")
    words = tuple(entry["words"])
    if not all(isinstance(word, str) for word in words):
        raise _not_candidates(path, f"theme {theme!r} has a word that is not a string")
    if entry.get("source") == "members":
        category = entry.get("category")
        if not isinstance(category, str):
            raise _not_candidates(path, f"member theme {theme!r} lacks its 'category'")
        return ThemeCandidates(words, source="members", category=category)
    if "similarity_scores" not in entry:
        return ThemeCandidates(words)
    scores = entry["similarity_scores"]
    if not isinstance(scores, list) or len(words) != len(scores):
        raise _not_candidates(
            path, f"theme {theme!r} has 'similarity_scores' that do not pair with its 'words'"
        )
    if not all(isinstance(score, int | float) and not isinstance(score, bool) for score in scores):
        raise _not_candidates(path, f"theme {theme!r} has a similarity score that is not a number")
    return ThemeCandidates(words, scores)


def _log_defaults(path: Path, fields: Sequence[str]) -> None:
    if fields:
        log.info(
            "%s: an older file's shape; defaulted what it does not record: %s",
            path,
            ", ".join(fields),
        )


def _themes_named(themes: Sequence[str], shown: int = 3) -> str:
    named = ", ".join(repr(theme) for theme in themes[:shown])
    more = f" and {len(themes) - shown} more" if len(themes) > shown else ""
    return f"{len(themes)} theme{'s' if len(themes) != 1 else ''} ({named}{more})"


def _failure_kind(value: object) -> FailureKind:
    try:
        return FailureKind(value)
    except ValueError:
        return FailureKind.NO_CANDIDATES


def _not_candidates(path: Path, what: str) -> InputError:
    return InputError(
        f"{path}: not a candidate-words file ({what}); "
        "run `asyncpipe select-candidates` again to rewrite it"
    )
