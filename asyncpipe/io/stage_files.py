"""Reading the files one stage leaves for the next, when a stage runs alone.

`select-candidates` reads `selected_themes.json`, and `enhance` reads it and
`candidate_words.json`. A file that is not what it should be is an `InputError`
naming it and the stage that rewrites it.
"""

from __future__ import annotations

from pathlib import Path

from asyncpipe.errors import InputError
from asyncpipe.io.files import read_json
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.candidates import CandidateSearchResult, ThemeCandidates
from asyncpipe.stages.themes import ThemeSelection


def load_selection(workspace: Workspace) -> ThemeSelection:
    path = workspace.selected_themes
    document = read_json(path, "selected themes")
    try:
        return ThemeSelection.from_json(document)
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a selected-themes file (missing {error})") from None


def load_candidates(workspace: Workspace) -> CandidateSearchResult:
    path = workspace.candidate_words
    document = read_json(path, "candidate words", stage="select-candidates")
    entries = document.get("candidates") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise _not_candidates(path, "no mapping of themes under 'candidates'")
    candidates: dict[str, ThemeCandidates] = {}
    for theme, entry in entries.items():
        candidates[theme] = _theme_candidates(path, theme, entry)
    metadata = document.get("metadata")
    failed = metadata.get("failed_themes") if isinstance(metadata, dict) else None
    kinds = metadata.get("failed_theme_kinds") if isinstance(metadata, dict) else None
    kinds = kinds if isinstance(kinds, dict) else {}
    # Files written before kinds were recorded keep only reasons: every theme the
    # search gave up then had no candidates.
    failed_themes = {
        theme: ThemeFailure(_failure_kind(kinds.get(theme)), str(reason))
        for theme, reason in (failed.items() if isinstance(failed, dict) else ())
    }
    return CandidateSearchResult(candidates=candidates, failed_themes=failed_themes)


def _theme_candidates(path: Path, theme: str, entry: object) -> ThemeCandidates:
    """One theme's entry: members (words and their category) or neighbours with scores."""
    if not isinstance(entry, dict) or not isinstance(entry.get("words"), list):
        raise _not_candidates(path, f"theme {theme!r} lacks a 'words' list")
    words = tuple(entry["words"])
    if entry.get("source") == "members":
        category = entry.get("category")
        if not isinstance(category, str):
            raise _not_candidates(path, f"member theme {theme!r} lacks its 'category'")
        return ThemeCandidates(words, source="members", category=category)
    scores = entry.get("similarity_scores")
    if not isinstance(scores, list) or len(words) != len(scores):
        raise _not_candidates(
            path, f"theme {theme!r} lacks equally long 'words' and 'similarity_scores' lists"
        )
    return ThemeCandidates(words, tuple(scores))


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
