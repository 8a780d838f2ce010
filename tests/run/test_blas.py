"""One BLAS thread: in the command line's process, in a scoring worker, and for a
library call only while it runs (`asyncpipe.run.blas`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from asyncpipe.run.blas import one_blas_thread
from asyncpipe.run.scoring_pool import ScoringPool
from tests.run.imported_names import blas_threads

#: What OpenBLAS starts with here: a thread per core (unless the environment says).
DEFAULT = blas_threads()


def test_numpy_here_has_more_than_one_blas_thread_to_begin_with() -> None:
    # Without this the other tests could not fail: on one core there is nothing to hold.
    assert DEFAULT and max(DEFAULT) > 1, "run on a machine of two cores or more"


def test_the_command_line_holds_one_blas_thread_for_the_rest_of_the_process() -> None:
    probe = (
        "from asyncpipe.run.blas import hold_one_blas_thread\n"
        "from tests.run.imported_names import blas_threads\n"
        "hold_one_blas_thread()\n"
        "print(blas_threads())\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment,
    )
    assert result.stdout.strip() == str([1] * len(DEFAULT))


def test_a_library_call_holds_one_thread_only_while_it_runs() -> None:
    with one_blas_thread():
        inside = blas_threads()
    assert inside == [1] * len(DEFAULT)
    assert blas_threads() == DEFAULT


@pytest.mark.asyncio
async def test_a_scoring_worker_scores_on_one_blas_thread() -> None:
    async with ScoringPool(workers=1, groups=4, size=4) as pool:
        assert pool.executor is not None
        threads = await asyncio.get_running_loop().run_in_executor(pool.executor, blas_threads)
    assert threads == [1]
