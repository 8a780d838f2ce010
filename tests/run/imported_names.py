"""A probe for a worker process, in a module of its own: unpickling it imports only `sys`.

(A function of a test module would bring that module's imports, pytest and
asyncio among them, into the worker it probes.)
"""

from __future__ import annotations

import sys


def imported_of(names: tuple[str, ...]) -> list[str]:
    """Which of `names`, or of their submodules, this process has imported."""
    return sorted(
        name
        for name in sys.modules
        if any(name == wanted or name.startswith(f"{wanted}.") for wanted in names)
    )


def blas_threads() -> list[int]:
    """The thread count of each BLAS library this process has loaded."""
    from threadpoolctl import threadpool_info

    return [
        library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"
    ]
