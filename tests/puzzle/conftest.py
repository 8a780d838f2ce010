"""Fixtures of the pure puzzle tests."""

from __future__ import annotations

import numpy as np
import pytest

from asyncpipe.puzzle.solver import split_table


@pytest.fixture(scope="module")
def table_4x4() -> np.ndarray:
    """Built once for the module; later calls in this process hit the cache."""
    return split_table(4, 4)
