"""The scoring pool runs score_puzzle in real child processes and leaves none behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.embeddings.providers.decode import vectors_from_answer
from asyncpipe.puzzle.scoring import score_puzzle
from asyncpipe.run.scoring_pool import ScoringPool
from asyncpipe.run.scoring_worker import WORKER_NICENESS
from tests.run.imported_names import imported_of
from tests.support import CHECKPOINT


def child_pids() -> set[int]:
    """Direct children of this process, from /proc (no psutil needed).

    Left out: multiprocessing's resource tracker, which `spawn` starts once per
    parent process and which lives as long as the parent (here, the test run).

    The scan starts over when one of this process's threads ends during it: a
    thread's children pass to another thread as it ends, so a partial scan
    could miss one.
    """
    while True:
        try:
            pids = _children_of_every_thread()
        except FileNotFoundError:
            continue
        return {pid for pid in pids if b"resource_tracker" not in _command_line(pid)}


def _children_of_every_thread() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return pids


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def session_members(session: int, patience: float = 5.0) -> list[str]:
    """Processes still in `session`, after giving exiting ones a moment to go."""
    deadline = time.monotonic() + patience
    while True:
        members = subprocess.run(
            ["ps", "-o", "pid=,args=", "-s", str(session)], capture_output=True, text=True
        ).stdout.splitlines()
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.1)


def clustered_puzzle(seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(4, 32))
    words = np.repeat(centres, 4, axis=0) + 0.1 * generator.normal(size=(16, 32))
    names = [f"word{index}" for index in range(16)]
    return names, words.astype(np.float32), centres.astype(np.float32)


@pytest.mark.asyncio
async def test_scores_come_from_child_processes_and_match_in_process_scoring() -> None:
    before = child_pids()
    puzzles = [clustered_puzzle(seed) for seed in range(3)]
    async with ScoringPool(workers=2, groups=4, size=4) as pool:
        scores = await asyncio.gather(*(pool.score(*puzzle) for puzzle in puzzles))
        during = child_pids() - before
    assert len(during) >= 1  # the work ran in processes of the pool's own
    assert os.getpid() not in during
    for (words, vectors, themes), score in zip(puzzles, scores, strict=True):
        assert score == score_puzzle(vectors, themes, words)
        assert score.solver_optimal
    assert pool.statistics().puzzles_scored == 3
    assert child_pids() - before == set()


@pytest.mark.asyncio
async def test_busy_time_is_wall_time_with_work_in_the_pool_not_a_sum_over_puzzles() -> None:
    puzzles = [clustered_puzzle(seed) for seed in range(6)]
    loop = asyncio.get_running_loop()
    async with ScoringPool(workers=2, groups=4, size=4) as pool:
        started = loop.time()
        await asyncio.gather(*(pool.score(*puzzle) for puzzle in puzzles))
        wall = loop.time() - started
    figures = pool.statistics()
    assert figures.puzzles_scored == 6 and figures.workers == 2
    # Four puzzles overlap in the pool at a time: a sum of their waits would exceed the wall.
    assert 0.0 < figures.busy_seconds <= wall + 0.001


@pytest.mark.asyncio
async def test_an_error_inside_the_pool_block_leaves_no_child_process() -> None:
    before = child_pids()
    with pytest.raises(RuntimeError, match="boom"):
        async with ScoringPool(workers=2, groups=4, size=4) as pool:
            await pool.score(*clustered_puzzle(1))
            raise RuntimeError("boom")
    assert child_pids() - before == set()


@pytest.mark.asyncio
async def test_a_cancelled_scoring_leaves_no_child_process() -> None:
    before = child_pids()

    puzzle = clustered_puzzle(0)
    first_scored = asyncio.Event()

    async def score_one(pool: ScoringPool) -> None:
        await pool.score(*puzzle)
        first_scored.set()

    async def score_many() -> None:
        async with ScoringPool(workers=1, groups=4, size=4) as pool:
            await asyncio.gather(*(score_one(pool) for _ in range(2000)))

    task = asyncio.create_task(score_many())
    await asyncio.wait_for(first_scored.wait(), timeout=60)  # cancelled mid-batch, not before
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert child_pids() - before == set()


@pytest.mark.asyncio
async def test_using_the_pool_outside_its_block_is_an_error() -> None:
    pool = ScoringPool(workers=1, groups=4, size=4)
    with pytest.raises(RuntimeError, match="outside"):
        await pool.score(*clustered_puzzle(0))


@pytest.mark.asyncio
async def test_the_executor_is_lent_only_while_the_pool_is_open() -> None:
    pool = ScoringPool(workers=1, groups=4, size=4)
    assert pool.executor is None
    async with pool:
        assert pool.executor is not None
        worker = await asyncio.get_running_loop().run_in_executor(pool.executor, os.getpid)
        assert worker in child_pids()
    assert pool.executor is None


@pytest.mark.asyncio
async def test_workers_run_below_the_priority_of_the_process_that_holds_the_loop() -> None:
    async with ScoringPool(workers=2, groups=4, size=4) as pool:
        assert pool.executor is not None
        loop = asyncio.get_running_loop()
        niceness = await asyncio.gather(
            *(loop.run_in_executor(pool.executor, os.nice, 0) for _ in range(4))
        )
    assert set(niceness) == {min(os.nice(0) + WORKER_NICENESS, 19)}


@pytest.mark.asyncio
async def test_a_worker_scoring_and_decoding_imports_no_network_pipeline_or_lexicon() -> None:
    heavy = (
        "google.genai",
        "httpx",
        "pydantic",
        "pyarrow",
        "yaml",
        "asyncio",
        "asyncpipe.run.pipeline",
        # The look-alike check's variant keys come with the puzzle: 17 MB a worker.
        "asyncpipe.io.lexicon_file",
    )
    async with ScoringPool(workers=1, groups=4, size=4) as pool:
        assert pool.executor is not None
        await pool.score(*clustered_puzzle(0))
        answer = b'{"embeddings": [{"values": [0.6, 0.8]}]}'
        loop = asyncio.get_running_loop()
        decoded = await loop.run_in_executor(pool.executor, vectors_from_answer, answer, 1, 2)
        imported = await loop.run_in_executor(pool.executor, imported_of, heavy)
    assert decoded.shape == (1, 2)
    assert imported == []


def test_a_run_scores_every_puzzle_and_leaves_no_process_behind(workdir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncpipe", "run", "--count", "4", "--provider", "glove"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its session id is its pid: any survivor keeps it
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert session_members(process.pid) == []

    puzzles = json.loads((workdir / "data/outputs/final_puzzles.json").read_text())
    assert len(puzzles) == 4
    for puzzle in puzzles.values():
        quality = puzzle["quality"]
        assert len(quality["silhouette"]) == 16 and len(quality["coherence"]) == 4
        assert isinstance(quality["solver_optimal"], bool)
        assert 0.0 <= quality["difficulty"] <= 1.0
        assert sorted(i for group in quality["solver_best_groups"] for i in group) == list(
            range(16)
        )
    report = json.loads((workdir / "reports/puzzle_quality.json").read_text())
    assert report["puzzles_scored"] == 4
    assert report["solver_recovers_intended_grouping"] == sum(
        puzzle["quality"]["solver_optimal"] for puzzle in puzzles.values()
    )
    metadata = json.loads((workdir / "data/outputs/puzzle_metadata.json").read_text())
    assert metadata["run_statistics"]["puzzles_scored"] == 4
    assert "Quality: the embedding solver recovers" in stderr


def test_ctrl_c_while_scoring_exits_130_and_leaves_no_process_behind(workdir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncpipe", "run", "--provider", "glove"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # The first scored puzzle is appended to the checkpoint: from then on the pool is busy.
    checkpoint = workdir / CHECKPOINT
    deadline = time.monotonic() + 60
    while not (checkpoint.exists() and '"puzzle"' in checkpoint.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, "scoring never started"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert session_members(process.pid) == []


_KILLED_PARENT = """
import asyncio, os, signal
import numpy as np
from asyncpipe.run.scoring_pool import ScoringPool
from asyncpipe.run.scoring_worker import WORKER_NICENESS

async def main() -> None:
    async with ScoringPool(2, 4, 4) as pool:
        rng = np.random.default_rng(0)
        words = [f"w{n}" for n in range(16)]
        await asyncio.gather(*(
            pool.score(words, rng.normal(size=(16, 8)), rng.normal(size=(4, 8)))
            for _ in range(4)
        ))
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind runs

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "killed_parent.py"
    script.write_text(_KILLED_PARENT, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=Path(__file__).resolve().parents[1],
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    parent.wait(timeout=60)

    assert parent.returncode == -signal.SIGKILL
    assert session_members(parent.pid) == []
