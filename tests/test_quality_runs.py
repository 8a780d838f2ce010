"""The quality bar in whole runs: poor puzzles flagged, or rebuilt from spare themes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import run_cli

BAR = 0.5


def configure(workdir: Path, policy: str) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["quality"].update(max_difficulty=BAR, on_low_quality=policy, max_rebuild_rounds=2)
    # Neighbour groups (the older way) make enough poor puzzles to rebuild; groups of
    # category members rarely fall below the bar. The rebuild is the same for both.
    params["candidates"]["source"] = "neighbours"
    params["puzzle_generation"]["spare_theme_fraction"] = 1.0  # spares for every rebuild
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def read(workdir: Path, name: str) -> dict:
    return json.loads((workdir / name).read_text())


def test_flag_keeps_poor_puzzles_and_marks_exactly_those_above_the_bar(workdir: Path) -> None:
    configure(workdir, "flag")
    result = run_cli(["run", "--count", "8", "--provider", "glove"], cwd=workdir)
    assert result.returncode == 0, result.stderr

    puzzles = read(workdir, "data/outputs/final_puzzles.json")
    flags = [p["quality"]["below_quality_bar"] for p in puzzles.values()]
    assert flags == [p["quality"]["difficulty"] > BAR for p in puzzles.values()]
    assert any(flags)  # the bar is strict enough to matter on this batch
    report = read(workdir, "reports/puzzle_quality.json")
    assert report["below_quality_bar"] == sum(flags)
    assert report["rebuilt"] == 0
    assert report["quality_bar"]["on_low_quality"] == "flag"


def test_rebuild_drops_the_weakest_theme_of_poor_puzzles_and_reassembles(workdir: Path) -> None:
    flagged = workdir / "flagged"
    flagged.mkdir()
    (flagged / "params.yaml").write_text((workdir / "params.yaml").read_text())
    configure(flagged, "flag")
    configure(workdir, "rebuild")
    for folder in (flagged, workdir):
        result = run_cli(["run", "--count", "8", "--provider", "glove"], cwd=folder)
        assert result.returncode == 0, result.stderr
    assert "Rebuilding" in result.stderr

    before = read(flagged, "reports/puzzle_quality.json")
    after = read(workdir, "reports/puzzle_quality.json")
    assert after["rebuilt"] > 0
    assert after["below_quality_bar"] < before["below_quality_bar"]
    metadata = read(workdir, "data/outputs/puzzle_metadata.json")
    dropped = {
        theme: failure["reason"]
        for theme, failure in metadata["failed_themes"].items()
        if failure["kind"] == "dropped_by_rebuild"
    }
    assert all(reason.startswith("dropped to rebuild") for reason in dropped.values())
    assert len(dropped) == after["rebuilt"]
    puzzles = read(workdir, "data/outputs/final_puzzles.json")
    assert len(puzzles) == 8
    used = {theme for puzzle in puzzles.values() for theme in puzzle["themes"]}
    assert not used & set(dropped)


def test_a_rebuilt_batch_is_byte_identical_run_to_run(workdir: Path) -> None:
    configure(workdir, "rebuild")
    outputs = []
    for _ in range(2):
        # From the same history: after the first run it holds that batch, and a new
        # batch would avoid its groups.
        (workdir / "data/history/published.jsonl").unlink(missing_ok=True)
        result = run_cli(["run", "--count", "6", "--provider", "glove"], cwd=workdir)
        assert result.returncode == 0, result.stderr
        outputs.append((workdir / "data/outputs/final_puzzles.json").read_bytes())
    assert outputs[0] == outputs[1]


def test_a_rebuild_stopped_by_sigterm_resumes_to_the_same_batch(workdir: Path) -> None:
    """The rebuild rounds' decisions rest on recorded scores: a resumed run makes the same."""
    stopped = workdir / "stopped"
    stopped.mkdir()
    (stopped / "params.yaml").write_text((workdir / "params.yaml").read_text())
    args = [sys.executable, "-m", "asyncpipe", "run", "--count", "8", "--provider", "glove"]
    for folder in (workdir, stopped):
        configure(folder, "rebuild")
    uninterrupted = run_cli(args[3:], cwd=workdir)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    run = subprocess.Popen(args, cwd=stopped, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    seen = []
    for line in run.stderr:  # the first rebuild round has begun
        seen.append(line)
        if "Rebuilding" in line:
            run.send_signal(signal.SIGTERM)
            break
    seen.append(run.stderr.read())
    assert run.wait(timeout=120) == 143, "".join(seen)
    metadata = read(stopped, "data/outputs/puzzle_metadata.json")
    assert metadata["partial"] and metadata["interrupted_by"] == "SIGTERM"

    resumed = run_cli([*args[3:], "--resume"], cwd=stopped)
    assert resumed.returncode == 0, resumed.stderr
    assert "puzzles scored are not redone" in resumed.stderr
    final = Path("data/outputs/final_puzzles.json")
    assert (stopped / final).read_bytes() == (workdir / final).read_bytes()
