"""asyncpipe from Python: the public surface, and `generate` against a command-line run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import asyncpipe
from asyncpipe.settings.params_file import load_params
from tests.support import FINAL, REPO, run_cli


def test_every_public_name_resolves_and_nothing_else_does() -> None:
    for name in asyncpipe.__all__:
        assert getattr(asyncpipe, name) is not None
    assert set(asyncpipe.__all__) == {"__version__", *asyncpipe._EXPORTS}
    assert issubclass(asyncpipe.ConfigError, asyncpipe.AsyncpipeError)
    with pytest.raises(AttributeError):
        _ = asyncpipe.make_puzzles  # internal: reached through its own module only


def test_importing_the_package_loads_none_of_the_pipeline() -> None:
    """Scoring workers import asyncpipe.puzzle.scoring; the package must not drag in the SDK."""
    probe = "import asyncpipe, sys; print(sorted(m for m in ('numpy', 'google.genai', 'asyncpipe.run.pipeline') if m in sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


@pytest.mark.slow
def test_generate_writes_the_same_batch_as_the_command_line(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml").params
    params = params.model_copy(
        update={
            "puzzle_generation": params.puzzle_generation.model_copy(
                update={"total_puzzle_count": 3}
            )
        }
    )
    from_python, from_cli = tmp_path / "python", tmp_path / "cli"
    from_python.mkdir()
    from_cli.mkdir()

    report = asyncpipe.generate(params, from_python)
    (from_cli / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = run_cli(["run", "--count", "3"], cwd=from_cli)

    assert done.returncode == 0, done.stderr
    assert (report.puzzles_requested, report.puzzles_generated, report.partial) == (3, 3, False)
    assert (from_python / FINAL).read_bytes() == (from_cli / FINAL).read_bytes()
