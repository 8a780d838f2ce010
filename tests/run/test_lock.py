"""One run per workdir: a second is turned away naming the first, and a killed run's
lock never outlives it. Real files, real processes, real SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asyncpipe.errors import BusyError
from asyncpipe.run.lock import exclusive_run
from tests.support import FINAL, REPO, run_cli

LOCK = Path("data/cache/run.lock")

_HOLDER = """
import sys, time
from pathlib import Path
from asyncpipe.run.lock import exclusive_run
with exclusive_run(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "run.lock"
    with exclusive_run(path):
        with pytest.raises(BusyError, match=r"run.lock: another asyncpipe run \(pid \d+\)"):
            with exclusive_run(path):
                pass
    with exclusive_run(path):  # released at the end of the block
        assert path.read_text(encoding="utf-8").startswith("pid ")


def test_a_run_in_a_busy_workdir_exits_75_and_a_killed_holder_frees_it(workdir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(workdir / LOCK)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        busy = run_cli(["run", "--count", "1"], cwd=workdir)
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the lock
        holder.wait(timeout=30)

    assert busy.returncode == 75, busy.stderr
    assert f"another asyncpipe run (pid {holder.pid})" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert not (workdir / FINAL).exists()

    after = run_cli(["run", "--count", "1"], cwd=workdir)
    assert after.returncode == 0, after.stderr
    assert (workdir / FINAL).exists()
