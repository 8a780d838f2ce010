"""What runs in a scoring-pool worker as it starts: kept apart so that workers import little.

A spawned worker imports the module of its initializer to unpickle it. Here
that is this one, which needs only the solver (numpy), not asyncio or the rest
of `asyncpipe.run.scoring_pool`; the work itself (`score_puzzle`, the REST
decoder `asyncpipe.embeddings.providers.decode`) is imported on first use.
About 40 MB a worker once the solver's tables are built, most of it numpy
and those tables.
"""

from __future__ import annotations

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


def start_worker(groups: int, size: int, parent: int) -> None:
    """The pool's initializer: ignore the signals that are the parent's, die with it, warm up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with(parent)
    hold_mmap_threshold()  # the worker decodes answers of megabytes: asyncpipe.run.allocator
    hold_one_blas_thread()  # the pool's workers are the run's parallelism: asyncpipe.run.blas
    prepare(groups, size)  # the solver's tables, built once per worker before the first puzzle


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
