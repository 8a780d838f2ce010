"""One BLAS thread per process: the run's matrix products are small, and its cores are spoken for.

numpy's OpenBLAS starts as many threads as the machine has cores for each matrix
product. The run's products are small (a pool of 40 words against 3072
dimensions, a puzzle's 16 x 16 similarities) and its cores are already taken
by the scoring pool's workers and the event loop: on the 2-core machine, with
both cores busy, a 38 x 3072 product took 8 ms on two threads and 0.3 ms on
one, and the first round of an 80-puzzle assembly 4.2 to 5.0 s instead of 1.5.
One thread also keeps every product's arithmetic independent of the machine's
core count, so that the same params and seed give the same bytes everywhere.

threadpoolctl sets the limit at run time, in the process that has numpy
loaded already: the command line calls `hold_one_blas_thread` once, a scoring
worker as it starts, and `asyncpipe.generate` holds `one_blas_thread()` for the
run only, leaving its caller's settings as they were.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy  # noqa: F401  (loads the BLAS: threadpoolctl limits only libraries loaded)
from threadpoolctl import threadpool_limits


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread until the block ends (or, called bare, from now on)."""
    return threadpool_limits(limits=1, user_api="blas")


def hold_one_blas_thread() -> None:
    """BLAS on one thread for the rest of the process."""
    one_blas_thread()
