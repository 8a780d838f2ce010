"""Shared fixtures: the real GloVe index (loaded once) and scratch work folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asyncpipe.io.vector_index import VocabularyIndex, load_glove
from tests.support import REPO


@pytest.fixture(scope="session")
def glove() -> VocabularyIndex:
    return load_glove()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch work folder holding a copy of the project's params.yaml."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path
