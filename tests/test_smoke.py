import json
from pathlib import Path

from tests.support import run_cli


def test_run_writes_the_requested_puzzles(workdir: Path) -> None:
    result = run_cli(["run", "--count", "3"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    puzzles = json.loads((workdir / "data/outputs/final_puzzles.json").read_text())
    assert list(puzzles) == ["puzzle_1", "puzzle_2", "puzzle_3"]
