"""Helpers for tests: where the repository and the shared reference inputs are, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Inputs that users of the older pipeline have; copied into a test's folder, never edited.
REFERENCE = REPO / "tests" / "fixtures" / "reference"

# Where a run with the default params.yaml writes, relative to its workdir.
SELECTED = Path("data/themes/selected_themes.json")
CANDIDATES = Path("data/candidates/candidate_words.json")
FINAL = Path("data/outputs/final_puzzles.json")
METADATA = Path("data/outputs/puzzle_metadata.json")
ANALYSIS = Path("reports/embedding_analysis.json")
ALL_TABLE = Path("data/cache/all_embeddings.csv")
PUZZLE_TABLE = Path("data/embeddings/puzzle_embeddings.csv")
STORE = Path("data/cache/embeddings.sqlite3")
CHECKPOINT = Path("data/cache/run_checkpoint.jsonl")


def run_cli(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m asyncpipe` in a real subprocess, as a user would, without any API key.

    `preexec` runs in the child before asyncpipe starts (resource limits, privileges).
    """
    environment = {key: value for key, value in os.environ.items() if key != "GEMINI_API_KEY"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "asyncpipe", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )
