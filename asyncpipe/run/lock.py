"""One run per workdir at a time: an advisory lock on a file in the cache folder.

Two runs in one workdir would write the same outputs and append to the same
checkpoint, and a resume would then continue a mix of both. The older
pipeline guarded its files with lock files that a killed run left behind;
this lock is `flock`, which the kernel drops when the process ends, however
it ends, so there is never a stale lock to clear by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asyncpipe.errors import BusyError, OutputError


@contextmanager
def exclusive_run(path: Path) -> Iterator[None]:
    """Hold the lock at `path` for the block, or raise `BusyError` naming the holder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+", encoding="utf-8")
    except OSError as error:
        raise OutputError(f"{path}: cannot create the run lock ({error.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BusyError(
                f"{path}: another asyncpipe run ({holder}) is working in this workdir; "
                "wait for it to end, or give this run its own --workdir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield  # closing the file, at the end of the block, releases the lock
