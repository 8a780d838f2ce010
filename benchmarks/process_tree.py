"""Peak resident memory of a process and all its descendants, sampled from /proc.

`os.wait4`'s `ru_maxrss` is the peak of the largest single process, so a run whose
memory is spread over a main process and its scoring workers looks smaller than it
is. `TreeMemorySampler` sums VmRSS over the process and every descendant every
20 ms, in a thread, until the process exits.

Not for: exact accounting. RSS counts shared pages (libraries, the memory-mapped
GloVe file) once per process that maps them, so the sum can exceed what the tree
costs the machine; and a spike shorter than the interval can be missed. Linux only
(/proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, which distributions set).
"""

from __future__ import annotations

import threading
from pathlib import Path

PROC = Path("/proc")
INTERVAL = 0.02


def children(pid: int) -> list[int]:
    """The direct children of `pid`, forked by any of its threads; [] once it is gone.

    Each thread has its own children file, so all of them are read: a pool started
    from a thread other than the main one would be missed otherwise.
    """
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, parents before their children."""
    tree = [pid]
    position = 0
    while position < len(tree):
        tree.extend(children(tree[position]))
        position += 1
    return tree


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB; None once it has exited (a zombie has no VmRSS line)."""
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


class TreeMemorySampler:
    """Samples a process tree's resident memory until its root exits or `stop` is called.

    Use as a context manager around the wait for the process, started right after it:

        with TreeMemorySampler(process.pid) as sampler:
            process.wait()
        sampler.peak_tree_kb, sampler.peak_main_kb

    Peaks are in kB, as /proc reports them; `peak_processes` is the most processes
    seen in the tree at once.
    """

    __slots__ = (
        "_interval",
        "_pid",
        "_stopped",
        "_thread",
        "peak_main_kb",
        "peak_processes",
        "peak_single_kb",
        "peak_tree_kb",
        "samples",
    )

    def __init__(self, pid: int, interval: float = INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self._pid = pid
        self._interval = interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_tree_kb = 0
        self.peak_main_kb = 0
        self.peak_single_kb = 0
        self.peak_processes = 0
        self.samples = 0

    def sample(self) -> bool:
        """Take one sample; False when the root process has exited."""
        main = rss_kb(self._pid)
        if main is None:
            return False
        sizes = [main]
        for pid in descendants(self._pid)[1:]:
            size = rss_kb(pid)
            if size is not None:
                sizes.append(size)
        self.peak_main_kb = max(self.peak_main_kb, main)
        self.peak_single_kb = max(self.peak_single_kb, *sizes)
        self.peak_tree_kb = max(self.peak_tree_kb, sum(sizes))
        self.peak_processes = max(self.peak_processes, len(sizes))
        self.samples += 1
        return True

    def _run(self) -> None:
        while self.sample() and not self._stopped.wait(self._interval):
            pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tree-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> TreeMemorySampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
