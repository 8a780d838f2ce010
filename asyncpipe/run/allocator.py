"""Give freed vector buffers back to the system: glibc's mmap threshold, held fixed.

glibc serves an allocation above its mmap threshold (128 KiB at start) with
its own `mmap`, unmapped again on `free`. But each time such a block is freed
the threshold rises to the block's size, up to 32 MiB. A run allocates and
frees blocks of 1 to 50 MB all the time (answers of 4 MB of JSON, decoded
batches of 1.2 MB at 3072 dimensions, table row groups): after the first few,
they all come from the heap instead, which fragments and is rarely trimmed.
Measured on the 80-puzzle run at 3072 dimensions, the main process peaked at
680 MB with the moving threshold and 470 MB with it held at 128 KiB, for the
same outputs. The price is fresh pages for each large block, about a millisecond
per 4 MB answer: below the noise of a run's wall time on this machine.

`hold_mmap_threshold()` is called once by each process of a run, the command
line and every scoring worker. It does nothing off glibc, or when the user set
`MALLOC_MMAP_THRESHOLD_` (their choice wins; glibc already read it).
"""

from __future__ import annotations

import ctypes
import os
import sys

#: From <malloc.h>.
_M_MMAP_THRESHOLD = -3
#: glibc's own starting value: setting it, whatever the value, stops the threshold moving.
MMAP_THRESHOLD_BYTES = 128 * 1024


def hold_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True when it was set here."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask, or one without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0 and changes nothing.
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
