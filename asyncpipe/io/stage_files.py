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
        words = entry.get("words") if isinstance(entry, dict) else None
        scores = entry.get("similarity_scores") if isinstance(entry, dict) else None
        if not isinstance(words, list) or not isinstance(scores, list) or len(words) != len(scores):
            raise _not_candidates(
                path, f"theme {theme!r} lacks equally long 'words' and 'similarity_scores' lists"
            )
        candidates[theme] = ThemeCandidates(tuple(words), tuple(scores))
    metadata = document.get("metadata")
    failed = metadata.get("failed_themes") if isinstance(metadata, dict) else None
    # The file keeps only each failure's reason: every theme the search gives up
    # has no candidates.
    failed_themes = {
        theme: ThemeFailure(FailureKind.NO_CANDIDATES, str(reason))
        for theme, reason in (failed.items() if isinstance(failed, dict) else ())
    }
    return CandidateSearchResult(candidates=candidates, failed_themes=failed_themes)


def _not_candidates(path: Path, what: str) -> InputError:
    return InputError(
        f"{path}: not a candidate-words file ({what}); "
        "run `asyncpipe select-candidates` again to rewrite it"
    )
