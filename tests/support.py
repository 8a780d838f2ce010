"""Helpers for tests: where the repository and the shared reference inputs are, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Inputs that users of the older pipeline have; copied into a test's folder, never edited.
REFERENCE = REPO / "tests" / "fixtures" / "reference"


def run_cli(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m asyncpipe` in a real subprocess, as a user would, without any API key."""
    environment = {key: value for key, value in os.environ.items() if key != "GEMINI_API_KEY"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "asyncpipe", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
