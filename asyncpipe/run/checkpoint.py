"""The run's checkpoint: what an interrupted run finished, so `--resume` does not redo it.

The paid part of a run is embedding; the slow local part is scoring. The
checkpoint records both as they finish, one JSON object per line, each line
appended and fsynced before the run moves on:

    {"checkpoint": 1, "settings": {...}, "inputs": "<sha256>", "started_at": "..."}
    {"theme": "Planets", "embedded": true}
    {"theme": "Xyzzy", "failed": {"kind": "unembeddable_text", "reason": "embedding failed: ..."}}
    {"puzzle": ["mars", ...], "score": {...}}
    {"batch_job": "batches/ID", "texts": [...], "created_at": 1764800000.0, "attempt": 1}
    {"batch_job": "batches/ID", "ended": "JOB_STATE_SUCCEEDED", "refused": {"text": "why"}}

A Batch API job (`gemini.mode: batch`) is recorded as soon as the API has created
it, with its texts, and again when it ends: a resumed run waits on the jobs that
had not ended instead of paying for new ones, and does not ask again for a text a
job refused.

The vectors of a finished theme are not repeated here: they are in the
embedding store, which commits them before the theme counts as finished, so a
resumed run reads them from disk and sends no request for them. A theme that
failed for good (a text the provider cannot embed) is recorded with its
failure's kind and reason and not tried again; one that failed only because
the API kept failing (a retryable kind) is not recorded, so the resumed run
tries it again.

A resumed run is the same run only if it has the same settings (the params
that decide the puzzles, and the provider) and the same inputs (the drawn
themes and their candidates): both are compared, and a difference is refused
with the first differences named. Concurrency, rate limits, logging and the
output formats may change between the two: they never change the puzzles.

A score recorded by an older version, without the per-group difficulty figures
(`PuzzleScore.has_group_figures`), is left out: the vectors those figures need
are not in the checkpoint, so the resumed run scores that puzzle again, exactly
as an uninterrupted run would, and its outputs match byte for byte.

A kill can cut the last line short; that line is ignored. The file is deleted
when a run writes its complete outputs, and replaced when a run starts afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from asyncpipe.embeddings.batch_jobs import BatchJob, JobEnd
from asyncpipe.errors import ConfigError, InputError, OutputError
from asyncpipe.io.files import atomic_writer, read_input
from asyncpipe.puzzle.failures import ThemeFailure
from asyncpipe.puzzle.scoring import PuzzleScore
from asyncpipe.settings.sections import Params
from asyncpipe.stages.themes import ThemeSelection

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: The params sections that decide which puzzles a run makes.
_DECIDING_SECTIONS = (
    "puzzle_generation",
    "themes",
    "vector_search",
    "candidates",
    "quality",
)
_SHOWN_DIFFERENCES = 3


def run_settings(params: Params, provider: str) -> dict[str, Any]:
    """What must not change between a run and its resumption, as plain JSON."""
    settings: dict[str, Any] = {
        section: getattr(params, section).model_dump(mode="json") for section in _DECIDING_SECTIONS
    }
    settings["provider"] = {"name": provider}
    if provider == "gemini":
        gemini = params.gemini
        settings["provider"].update(
            model_id=gemini.model_id,
            embedding_dimension=gemini.embedding_dimension,
            task_type=gemini.task_type,
        )
    return settings


def inputs_digest(
    selection: ThemeSelection, candidates: Mapping[str, Sequence[str]], history: str = ""
) -> str:
    """A hash of the drawn themes and their candidate words, in order, and of the history
    file the run read (`history`, its digest; "" for none): the history decides which
    groups the run may make, so a resumed run must read the one its interrupted run read."""
    document: dict[str, object] = {
        "themes": list(selection.all_themes),
        "candidates": {theme: list(words) for theme, words in candidates.items()},
    }
    if history:
        document["history"] = history
    encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass
class Recorded:
    """What a checkpoint file holds."""

    settings: dict[str, Any]
    inputs: str
    started_at: str
    #: Bytes up to the end of the last whole record.
    intact_bytes: int = 0
    #: Theme -> None when it was embedded, else how it failed for good.
    themes: dict[str, ThemeFailure | None] = field(default_factory=dict)
    #: A puzzle's 16 words (grid order) -> its score.
    scores: dict[tuple[str, ...], PuzzleScore] = field(default_factory=dict, repr=False)
    #: The Batch API jobs the run created, in order of creation.
    batch_jobs: list[BatchJob] = field(default_factory=list, repr=False)
    #: How those that ended did, by name.
    batch_ends: dict[str, JobEnd] = field(default_factory=dict)

    @property
    def open_batch_jobs(self) -> list[BatchJob]:
        """The batch jobs that had not ended: paid for, so waited on by the next run."""
        return [job for job in self.batch_jobs if job.name not in self.batch_ends]

    @property
    def started_seconds(self) -> float | None:
        """`started_at` in seconds since the epoch (to the second); None if unreadable."""
        try:
            return datetime.fromisoformat(self.started_at).timestamp()
        except ValueError:
            return None

    @property
    def failed_themes(self) -> dict[str, ThemeFailure]:
        """The themes a resumed run does not try again, with their failures."""
        return {
            theme: failure
            for theme, failure in self.themes.items()
            if failure is not None and not failure.kind.retryable
        }

    def refuse_unless_same_settings(self, path: Path, settings: dict[str, Any]) -> None:
        if self.settings != settings:
            changes = ", ".join(_differences(self.settings, settings)[:_SHOWN_DIFFERENCES])
            raise ConfigError(
                f"{path}: cannot resume, the interrupted run had other settings ({changes}); "
                "restore them, or run without --resume to start afresh"
            )

    def refuse_unless_same_inputs(self, path: Path, inputs: str) -> None:
        if self.inputs != inputs:
            raise ConfigError(
                f"{path}: cannot resume, the drawn themes, their candidate words or the "
                "history differ from the interrupted run's (the theme source, the vector "
                "index or paths.history changed); "
                "run without --resume to start afresh"
            )


def read_checkpoint(path: Path) -> Recorded | None:
    """The checkpoint at `path`, or None when there is none."""
    data = read_input(
        path,
        missing=None,
        unreadable=lambda error: f"{path}: cannot read the checkpoint ({error.strerror})",
    )
    if data is None:
        return None
    # Every record is written with its newline in one write: text after the last
    # newline is a record a kill cut short.
    complete, newline, torn = data.rpartition(b"\n")
    if torn:
        log.info("%s: ignoring its last line, cut short", path)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(complete.split(b"\n") if newline else [], start=1):
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise _corrupt(path, number, "not JSON") from None
        if not isinstance(record, dict):
            raise _corrupt(path, number, "not a JSON object")
        records.append(record)
    if not records or records[0].get("checkpoint") != FORMAT_VERSION:
        raise _corrupt(path, 1, f"not an asyncpipe checkpoint of format {FORMAT_VERSION}")
    header = records[0]
    recorded = Recorded(
        settings=header.get("settings", {}),
        inputs=header.get("inputs", ""),
        started_at=header.get("started_at", "?"),
        intact_bytes=len(complete) + len(newline),
    )
    remeasured = 0
    for number, record in enumerate(records[1:], start=2):
        try:
            if "theme" in record:
                failed = record.get("failed")
                failure = None if failed is None else ThemeFailure.from_json(failed)
                recorded.themes[record["theme"]] = failure
            elif "batch_job" in record:
                name = record["batch_job"]
                if not isinstance(name, str):
                    raise TypeError("a batch job's name must be a string")
                if "ended" in record:
                    refused = {str(text): str(why) for text, why in record["refused"].items()}
                    recorded.batch_ends[name] = JobEnd(name, str(record["ended"]), refused)
                else:
                    texts = tuple(str(text) for text in record["texts"])
                    created = float(record["created_at"])
                    recorded.batch_jobs.append(
                        BatchJob(name, texts, created, int(record.get("attempt", 1)))
                    )
            elif "puzzle" in record:
                score = msgspec.convert(record["score"], PuzzleScore)
                if score.has_group_figures:
                    recorded.scores[tuple(record["puzzle"])] = score
                else:
                    remeasured += 1
        except (msgspec.ValidationError, TypeError, KeyError, ValueError, AttributeError) as error:
            raise _corrupt(path, number, f"a record that does not fit ({error})") from None
    if remeasured:
        log.info(
            "%s: %d puzzle scores were recorded before group difficulty was measured; "
            "scoring those puzzles again",
            path,
            remeasured,
        )
    return recorded


class Checkpoint:
    """Appends records to the checkpoint file, each fsynced, off the event loop.

    The writes go through one thread, so they land in the order they were made
    and the loop never waits on the disk.
    """

    def __init__(self, path: Path, file: IO[bytes]) -> None:
        self.path = path
        self._file = file
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asyncpipe-checkpoint")

    @classmethod
    def start(cls, path: Path, settings: dict[str, Any], inputs: str) -> Checkpoint:
        """A new checkpoint, replacing any earlier one."""
        header = {
            "checkpoint": FORMAT_VERSION,
            "settings": settings,
            "inputs": inputs,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with atomic_writer(path, "wb") as stream:
            stream.write(msgspec.json.encode(header) + b"\n")
        return cls(path, _open_for_append(path))

    @classmethod
    def resume(cls, path: Path, recorded: Recorded) -> Checkpoint:
        """Append to the checkpoint `recorded` was read from, after its last whole record."""
        file = _open_for_append(path)
        file.truncate(recorded.intact_bytes)  # drop a record a kill cut short
        return cls(path, file)

    async def theme_finished(self, theme: str, failure: ThemeFailure | None) -> None:
        record: dict[str, Any] = {"theme": theme}
        if failure is None:
            record["embedded"] = True
        else:
            record["failed"] = failure.to_json()
        await self._append(record)

    async def puzzle_scored(self, words: Sequence[str], score: PuzzleScore) -> None:
        await self._append({"puzzle": list(words), "score": score})

    async def batch_job_created(self, job: BatchJob) -> None:
        await self._append(
            {
                "batch_job": job.name,
                "texts": list(job.texts),
                "created_at": job.created_at,
                "attempt": job.attempt,
            }
        )

    async def batch_job_ended(self, end: JobEnd) -> None:
        await self._append({"batch_job": end.name, "ended": end.state, "refused": end.refused})

    def close(self) -> None:
        if not self._file.closed:
            self._writer.shutdown(wait=True)
            self._file.close()

    def discard(self) -> None:
        """The run is complete: nothing is left to resume."""
        self.close()
        self.path.unlink(missing_ok=True)

    async def _append(self, record: dict[str, Any]) -> None:
        line = msgspec.json.encode(record) + b"\n"
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._write_durably, line)
        except OSError as error:
            raise OutputError(
                f"{self.path}: cannot record progress ({error.strerror or error})"
            ) from None

    def _write_durably(self, line: bytes) -> None:
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())


def _open_for_append(path: Path) -> IO[bytes]:
    try:
        return path.open("ab")
    except OSError as error:
        raise OutputError(f"{path}: cannot open the checkpoint ({error.strerror})") from None


def _corrupt(path: Path, line: int, what: str) -> InputError:
    return InputError(
        f"{path} line {line}: {what}; delete the file or run without --resume to start afresh"
    )


def _differences(before: Any, after: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ, each as `key: old -> new`."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(before.keys() | after.keys()):
            inner = f"{where}.{key}" if where else str(key)
            found.extend(_differences(before.get(key), after.get(key), inner))
        return found
    if before == after:
        return []
    return [f"{where}: {json.dumps(before)} -> {json.dumps(after)}"]
