"""The held mmap threshold, seen as what it is for: freed vector buffers leave the RSS.

Each case runs in a fresh interpreter, since glibc's threshold is per process
and only moves once a large block has been freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from asyncpipe.run.allocator import hold_mmap_threshold

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# One 16 MB block freed (glibc's moving threshold rises to it), then 200 blocks of
# 1 MB, every other one freed: the RSS growth that is left, in MB.
_FRAGMENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from asyncpipe.run.allocator import hold_mmap_threshold

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    held = hold_mmap_threshold() if sys.argv[1] == "hold" else False
    big = np.ones(16 * 2**20 // 8)
    del big
    before = rss_mb()
    blocks = [np.ones(2**20 // 8) for _ in range(200)]
    del blocks[::2]
    print(json.dumps({"held": held, "growth": rss_mb() - before}))
    """
)


def _fragment(mode: str, **environment: str) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", _FRAGMENT, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **environment},
    )
    result: dict[str, float] = json.loads(completed.stdout)
    return result


def test_freed_blocks_leave_the_rss_once_the_threshold_is_held() -> None:
    held = _fragment("hold")
    moving = _fragment("leave")
    assert held["held"] is True
    # 100 MB are still referenced either way; the freed 100 MB are returned only when held.
    assert held["growth"] < 130
    assert moving["growth"] > 170


def test_a_threshold_the_user_set_is_left_alone() -> None:
    result = _fragment("hold", MALLOC_MMAP_THRESHOLD_="65536")
    assert result["held"] is False


def test_holding_twice_is_harmless() -> None:
    assert hold_mmap_threshold() == hold_mmap_threshold()
