"""The benchmark's instruments that work without a long run: the process-tree memory
sampler on a real tree of processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from benchmarks.process_tree import TreeMemorySampler, descendants, rss_kb

MB = 1024

# A parent holding 20 MB that starts a child holding 50 MB, both written to (a
# zero-filled bytearray may stay unbacked), and both alive together for a while.
TREE = textwrap.dedent(
    """
    import subprocess, sys
    held = bytearray(b"\\x01") * (20 << 20)
    child = subprocess.Popen([sys.executable, "-c",
        "import sys, time; held = bytearray(b'\\\\x01') * (50 << 20); "
        "print('ready', flush=True); time.sleep(0.6)"], stdout=subprocess.PIPE)
    child.stdout.readline()
    child.wait()
    """
)


def test_tree_peak_counts_a_child_the_single_process_peak_misses() -> None:
    process = subprocess.Popen([sys.executable, "-c", TREE])
    with TreeMemorySampler(process.pid) as sampler:
        _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # ru_maxrss: the largest single process of the tree (here the child, ~60 MB).
    assert usage.ru_maxrss >= 50 * MB
    assert sampler.peak_processes == 2
    assert sampler.peak_tree_kb > usage.ru_maxrss + 15 * MB
    assert sampler.peak_tree_kb >= sampler.peak_main_kb + 50 * MB
    assert 20 * MB <= sampler.peak_main_kb < 50 * MB
    assert sampler.samples >= 10


def test_sampler_stops_by_itself_when_the_root_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = TreeMemorySampler(process.pid)
    sampler.start()
    process.wait()
    sampler.stop()
    assert rss_kb(process.pid) is None
    assert descendants(os.getpid())[0] == os.getpid()


def test_sampler_refuses_an_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        TreeMemorySampler(os.getpid(), interval=0)
