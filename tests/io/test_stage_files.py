"""Reading back the files one stage leaves for the next: candidate failures keep their kind."""

from __future__ import annotations

import json
from pathlib import Path

from asyncpipe.io.stage_files import load_candidates
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.settings.sections import Params
from asyncpipe.settings.workspace import Workspace


def test_the_failed_themes_of_a_candidates_file_are_read_as_themes_without_candidates(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path, Params())
    reason = "no word of the theme is in the vector index 'glove'"
    document = {
        "candidates": {"Birds": {"words": ["owl", "wren"], "similarity_scores": [0.7, 0.6]}},
        "metadata": {"failed_themes": {"Zzqxv Blorft": reason}},
    }
    workspace.candidate_words.parent.mkdir(parents=True)
    workspace.candidate_words.write_text(json.dumps(document), encoding="utf-8")

    result = load_candidates(workspace)

    assert result.failed_themes == {"Zzqxv Blorft": ThemeFailure(FailureKind.NO_CANDIDATES, reason)}
    assert result.candidates["Birds"].words == ("owl", "wren")


def test_a_candidates_file_without_metadata_has_no_failed_themes(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path, Params())
    workspace.candidate_words.parent.mkdir(parents=True)
    workspace.candidate_words.write_text(json.dumps({"candidates": {}}), encoding="utf-8")

    assert load_candidates(workspace).failed_themes == {}
