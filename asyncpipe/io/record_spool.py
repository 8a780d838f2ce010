"""The batch's theme records set aside on disk, read back as a mapping, in order.

Once a window's puzzles are made, each of its themes is kept as a `ThemeRecord`
(its words, cosines and ranking) for the reports written at the end: the
embedding analysis and the all-embeddings table's fingerprint. In memory that
was about 1.3 KB a theme, 65 MB for the 50,000 themes of 10,000 puzzles, and it
grew with the batch to its end. Here each window's records are pickled into an
unnamed file (as `BlockSpool` does with table rows), and memory keeps only each
theme's window: the reports read the records window by window, whatever the size
of the batch.

`RecordSpool` is a read-only `Mapping` that behaves as the dict the windows'
records were once gathered in (`dict.update` window after window): themes in the
order they first came, a theme given again by a later window keeping its first
place and taking the later record. Iterating `items()` or `values()` reads the
file once, a window at a time; a single lookup reads one window.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from pathlib import Path
from typing import IO

from asyncpipe.puzzle.embedded import ThemeRecord


class RecordSpool(Mapping[str, ThemeRecord]):
    """`append` a window's records, then read them as a mapping; `close` drops the file."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Kept open for the spool's life, closed by `close`: no `with` can hold it.
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder, prefix=".records-")  # noqa: SIM115
        self._offsets: list[int] = []  # where each window's pickle starts
        self._window_of: dict[str, int] = {}  # theme -> the window of its latest record

    def append(self, records: Mapping[str, ThemeRecord]) -> None:
        """One window's records, in its order."""
        if not records:
            return
        self._file.seek(0, 2)
        self._offsets.append(self._file.tell())
        pickle.dump(dict(records), self._file, protocol=pickle.HIGHEST_PROTOCOL)
        window = len(self._offsets) - 1
        for theme in records:
            self._window_of[theme] = window  # a theme seen before keeps its place

    def __len__(self) -> int:
        return len(self._window_of)

    def __iter__(self) -> Iterator[str]:
        return iter(self._window_of)

    def __contains__(self, theme: object) -> bool:
        return theme in self._window_of

    def __getitem__(self, theme: str) -> ThemeRecord:
        return self._window(self._window_of[theme])[theme]

    def items(self) -> ItemsView[str, ThemeRecord]:
        return _Items(self)

    def values(self) -> ValuesView[ThemeRecord]:
        return _Values(self)

    def close(self) -> None:
        self._file.close()

    def _stream(self) -> Iterator[tuple[str, ThemeRecord]]:
        """Every (theme, latest record) in the mapping's order, one window in memory at a
        time (and, for the rare theme a later window gave again, that window too)."""
        seen: set[str] = set()
        for window in range(len(self._offsets)):
            for theme, record in self._window(window).items():
                if theme in seen:
                    continue
                seen.add(theme)
                latest = self._window_of[theme]
                yield theme, record if latest == window else self._window(latest)[theme]

    def _window(self, window: int) -> dict[str, ThemeRecord]:
        self._file.flush()
        self._file.seek(self._offsets[window])
        records: dict[str, ThemeRecord] = pickle.load(self._file)
        return records


class _Items(ItemsView[str, ThemeRecord]):
    _mapping: RecordSpool

    def __iter__(self) -> Iterator[tuple[str, ThemeRecord]]:
        return self._mapping._stream()


class _Values(ValuesView[ThemeRecord]):
    _mapping: RecordSpool

    def __iter__(self) -> Iterator[ThemeRecord]:
        return (record for _, record in self._mapping._stream())
