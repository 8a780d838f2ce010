"""What runs in a scoring-pool worker as it starts: kept apart so that workers import little.

A spawned worker imports the module of its initializer to unpickle it. Here
that is this one, which needs only the solver (numpy), not asyncio or the rest
of `asyncpipe.run.scoring_pool`; the work itself (`score_puzzle`, the REST
decoder `asyncpipe.embeddings.providers.decode`) is imported on first use.
About 40 MB a worker once the solver's tables are built, most of it numpy
and those tables.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

from asyncpipe.puzzle.solver import prepare
from asyncpipe.run.allocator import hold_mmap_threshold
from asyncpipe.run.blas import hold_one_blas_thread

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_CHECK_SECONDS = 1.0
#: How much lower a worker's scheduling priority is than the run's (`os.nice`).
WORKER_NICENESS = 10


def start_worker(groups: int, size: int, parent: int) -> None:
    """The pool's initializer: ignore the signals that are the parent's, die with it, warm up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with(parent)
    yield_to_the_loop()
    hold_mmap_threshold()  # the worker decodes answers of megabytes: asyncpipe.run.allocator
    hold_one_blas_thread()  # the pool's workers are the run's parallelism: asyncpipe.run.blas
    prepare(groups, size)  # the solver's tables, built once per worker before the first puzzle


def yield_to_the_loop() -> None:
    """Run this worker below the parent's priority: the cores are the event loop's first.

    The workers decode answers and score puzzles flat out, and with a server, a
    browser or another run on the same cores there are more busy processes than
    cores. At equal priority the loop's thread and its request thread then waited
    their turn like any other: on the 2-core machine, 80 puzzles at 3072 dimensions,
    interleaved, event-loop lag p99 37.9/38.4/32.9 ms against 22.0/26.9/27.8 ms with
    the workers at niceness 10, request latency p50 0.72 against 0.45 s, the same
    wall time (the loop wants little CPU, only at once). Nothing is lost when the
    cores are free: niceness orders who runs, it never idles a core. A decoding that
    falls behind holds back the next requests (the engine's decoding permits), so
    the answers waiting for it stay bounded: tree peak 317-320 MB against 322-325.
    """
    # POSIX only; a sandbox that forbids it leaves the worker at the parent's priority.
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)


def ready() -> None:
    """Nothing: submitted once per worker, it makes the executor start them all."""


def die_with(parent: int) -> None:
    """End this worker when process `parent` ends, however it ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(_PARENT_CHECK_SECONDS)
            os._exit(1)

        threading.Thread(target=watch, name="asyncpipe-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it was gone before the watch began
        os._exit(1)
