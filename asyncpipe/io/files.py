"""Writing the files the puzzle app and the data pipeline read, atomically; reading inputs.

Every file is written to a temporary file in its own folder, flushed to disk,
and renamed into place: a reader sees the old file or the new one, never half
of one, and a crash mid-write leaves the previous version. Failures to write
become `OutputError` with the path and the reason, never a traceback.

The embedding tables are written through the same writer (`asyncpipe.io.tables`).

Every input file (params.yaml, the theme source, the stage files, the vector
index, the checkpoint) is read through `read_input`, which turns the three ways
a read fails (missing, a directory, unreadable) into one line in its caller's
words. What the bytes mean is each caller's business.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, overload

from asyncpipe.errors import AsyncpipeError, InputError, OutputError


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path`; on success fsync it and rename it over `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({_reason(error, path)})") from None
    try:
        with os.fdopen(
            descriptor,
            mode,
            encoding=None if "b" in mode else "utf-8",
            newline=None if "b" in mode else "",
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; the app and the data pipeline read these files: give them
        # the mode an ordinary open() would have given (0666 less the umask).
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise OutputError(f"{path}: cannot write ({_reason(error, path)})") from None
    except BaseException:
        _remove_quietly(temporary)
        raise


def ensure_writable(folders: Iterable[Path]) -> None:
    """Create each folder and prove a file can be written in it, or raise `OutputError`.

    Called before the work, so an output folder that cannot be written is found
    in a second, not after an hour of paid embedding requests.
    """
    for folder in dict.fromkeys(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            descriptor, probe = tempfile.mkstemp(prefix=".asyncpipe-probe.", dir=folder)
            os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            raise OutputError(
                f"{folder}: cannot write ({_reason(error, folder / 'probe')})"
            ) from None


#: Encoded JSON gathered before it is written: large enough that writes are few.
_JSON_WRITE_CHARS = 1 << 20


class EntriesAsWritten(dict[str, Any]):
    """A JSON object for `write_json` whose entries are made one at a time, as written.

    The candidates of 50,000 themes as one dict of lists of rounded floats were
    about 130 MB at once, before the first byte was written; made entry by entry,
    each is garbage as soon as it is encoded. `entries` makes the `count` (key,
    value) pairs afresh each time it is called. `write_json` encodes with an indent,
    hence with json's Python encoder, which asks only `len`, truthiness and
    `items()` of a dict: those are all this answers. Anything else sees an empty
    dict, so it is not for use outside `write_json`.
    """

    def __init__(self, count: int, entries: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        super().__init__()
        self._count = count
        self._entries = entries

    def __len__(self) -> int:
        return self._count

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter(self._entries())


def write_json(path: Path, document: Any) -> None:
    """Write JSON with a stable layout (two-space indent, UTF-8, trailing newline).

    Encoded and written a megabyte at a time: `json.dumps` with an indent gathers every
    fragment of the document before it joins them, which for the candidates of 50,000
    themes was 600 MB at once. The bytes are the same as `json.dumps` would give.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, allow_nan=False)
    with atomic_writer(path) as handle:
        try:
            pending: list[str] = []
            size = 0
            for fragment in encoder.iterencode(document):
                pending.append(fragment)
                size += len(fragment)
                if size >= _JSON_WRITE_CHARS:
                    handle.write("".join(pending))
                    pending.clear()
                    size = 0
        except (TypeError, ValueError) as error:
            raise OutputError(f"{path}: cannot encode as JSON ({error})") from None
        handle.write("".join(pending) + "\n")


def write_text(path: Path, text: str | Iterable[str]) -> None:
    """Write UTF-8 text as it is (a page, a report), atomically like every output; given
    parts, each is written as it comes, so the whole text is never held at once."""
    with atomic_writer(path) as handle:
        if isinstance(text, str):
            handle.write(text)
        else:
            for part in text:
                handle.write(part)


@overload
def read_input(
    path: Path,
    *,
    missing: str,
    directory: str | None = None,
    unreadable: Callable[[OSError], str],
    error: type[AsyncpipeError] = InputError,
) -> bytes: ...


@overload
def read_input(
    path: Path,
    *,
    missing: None,
    directory: str | None = None,
    unreadable: Callable[[OSError], str],
    error: type[AsyncpipeError] = InputError,
) -> bytes | None: ...


def read_input(
    path: Path,
    *,
    missing: str | None,
    directory: str | None = None,
    unreadable: Callable[[OSError], str],
    error: type[AsyncpipeError] = InputError,
) -> bytes | None:
    """The bytes of the input file at `path`, or `error` with the caller's line when it
    cannot be read.

    Each caller words its own messages, since each names its file and what to do
    about it differently:

    - `missing`: the message when there is no file; None means a missing file is
      expected, and the answer is None.
    - `directory`: the message when `path` is a folder; None words it as any
      other unreadable file.
    - `unreadable`: builds the message from the `OSError` (permission denied, a
      file where a folder should be, a symlink loop, ...).
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if missing is None:
            return None
        raise error(missing) from None
    except IsADirectoryError as failure:
        raise error(directory if directory is not None else unreadable(failure)) from None
    except OSError as failure:
        raise error(unreadable(failure)) from None


#: The stage that writes each stage input `read_json` is asked for, by its description.
STAGE_WRITING = {"selected themes": "select-themes", "candidate words": "select-candidates"}


def read_json(path: Path, what: str, stage: str | None = None) -> Any:
    """Read a JSON input of a stage, with one clear line when it is missing or broken.

    `stage` is the command that writes the file (by default looked up in
    `STAGE_WRITING`): the message says to run it.
    """
    writer = stage or STAGE_WRITING.get(what)
    first = (
        f"run `asyncpipe {writer}` first (or `asyncpipe run`, which runs every stage)"
        if writer
        else "run the stage that writes it first"
    )
    again = f"run `asyncpipe {writer}` again to rewrite it" if writer else "write it again"
    data = read_input(
        path,
        missing=f"{path}: {what} not found; {first}",
        directory=f"{path}: {what} is a directory, expected a JSON file",
        unreadable=lambda error: f"{path}: cannot read {what} ({_reason(error, path)})",
    )
    if not data.strip():
        raise InputError(f"{path}: {what} file is empty; {again}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: {what} file is not UTF-8 text (bad byte at offset {error.start}), "
            f"so not a file asyncpipe wrote; {again}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated")
        damage = (
            "it ends early, probably truncated"
            if truncated
            else f"{error.msg} at column {error.colno}"
        )
        raise InputError(
            f"{path}, line {error.lineno}: {what} file is not valid JSON: {damage}; {again}"
        ) from None


_UMASK_LOCK = threading.Lock()


@functools.cache
def _umask() -> int:
    """The process's umask, read when the first file is written and remembered.

    Linux shows it in /proc/self/status, and reading that changes nothing.
    Elsewhere the only way to read it is to set it and set it back, which a file
    created by another thread in that instant would feel; the lock at least keeps
    two callers here from interleaving the two calls.
    """
    mask = _umask_from_proc()
    if mask is None:
        with _UMASK_LOCK:
            mask = os.umask(0)
            os.umask(mask)
    return mask


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


#: What some errors mean when reading or writing a file, in words a person acts on.
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large: the file system's or the process's file size limit "
    "(ulimit -f) was reached",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _reason(error: OSError, path: Path | None = None) -> str:
    if error.errno == errno.ENOTDIR and path is not None:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    return error.strerror or str(error)


def _file_in_the_way(path: Path) -> Path | None:
    """The first folder on the way to `path` that exists as something other than a folder."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
