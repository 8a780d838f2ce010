"""The run checkpoint: records survive a reopen exactly, a torn last line is dropped, and a
checkpoint of other settings or inputs is refused with the difference named.

Real files throughout; the scores are real `score_puzzle` results, so the
round trip is checked on the floats and tuples the pipeline really records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import msgspec
import numpy as np
import pytest

from asyncpipe.api import generate
from asyncpipe.embeddings.batch_jobs import BatchJob, JobEnd
from asyncpipe.errors import ConfigError, InputError
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure
from asyncpipe.puzzle.scoring import PuzzleScore, score_puzzle
from asyncpipe.run.checkpoint import Checkpoint, inputs_digest, read_checkpoint, run_settings
from asyncpipe.settings.params_file import load_params
from asyncpipe.settings.sections import Params
from asyncpipe.stages.themes import ThemeSelection

WORDS = [f"word{n}" for n in range(16)]
UNKNOWN = ThemeFailure(FailureKind.UNEMBEDDABLE_TEXT, "embedding failed: unknown word")


def a_score(seed: int = 0) -> PuzzleScore:
    rng = np.random.default_rng(seed)
    themes = rng.standard_normal((4, 32))
    words = np.repeat(themes, 4, axis=0) + 0.8 * rng.standard_normal((16, 32))
    return score_puzzle(words, themes, WORDS)


def a_selection(themes: tuple[str, ...] = ("planets", "fruit")) -> ThemeSelection:
    return ThemeSelection(themes, ("spare",), "random", 42, {}, "builtin", 10)


def start(path: Path, settings: dict[str, object] | None = None) -> Checkpoint:
    return Checkpoint.start(path, settings or {"a": 1}, "digest")


def test_themes_and_scores_read_back_exactly_as_recorded(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    score = a_score()
    checkpoint = start(path)

    async def record() -> None:
        await checkpoint.theme_finished("planets", None)
        await checkpoint.theme_finished("xyzzy", UNKNOWN)
        await checkpoint.puzzle_scored(WORDS, score)

    asyncio.run(record())
    checkpoint.close()
    recorded = read_checkpoint(path)

    assert recorded is not None
    assert recorded.themes == {"planets": None, "xyzzy": UNKNOWN}
    assert recorded.failed_themes == {"xyzzy": UNKNOWN}
    assert recorded.scores == {tuple(WORDS): score}  # every float to the last bit
    assert recorded.settings == {"a": 1}
    assert recorded.inputs == "digest"


def test_batch_jobs_read_back_as_recorded_created_and_ended(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    checkpoint = start(path)
    first = BatchJob("batches/first", ("mars", "Venus ", "zzqxv"), 1764800000.25)
    again = BatchJob("batches/again", ("mars",), 1764800100.5, attempt=2)

    async def record() -> None:
        await checkpoint.batch_job_created(first)
        await checkpoint.theme_finished("planets", None)
        await checkpoint.batch_job_ended(
            JobEnd(first.name, "JOB_STATE_FAILED", {"zzqxv": "refused (code 3: no)"})
        )
        await checkpoint.batch_job_created(again)

    asyncio.run(record())
    checkpoint.close()
    recorded = read_checkpoint(path)

    assert recorded is not None
    assert recorded.batch_jobs == [first, again]
    assert recorded.batch_ends == {
        first.name: JobEnd(first.name, "JOB_STATE_FAILED", {"zzqxv": "refused (code 3: no)"})
    }
    assert recorded.themes == {"planets": None}


@pytest.mark.parametrize(
    "record",
    [
        {"batch_job": 7, "texts": [], "created_at": 1.0},
        {"batch_job": "batches/x", "created_at": 1.0},
        {"batch_job": "batches/x", "texts": [], "created_at": "soon"},
        {"batch_job": "batches/x", "ended": "JOB_STATE_FAILED", "refused": ["a"]},
    ],
)
def test_a_batch_job_record_that_does_not_fit_is_an_input_error_naming_its_line(
    tmp_path: Path, record: dict[str, object]
) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    start(path).close()
    with path.open("ab") as file:
        file.write(json.dumps(record).encode() + b"\n")
    with pytest.raises(InputError, match="line 2: a record that does not fit"):
        read_checkpoint(path)


def test_a_resumed_run_retries_a_theme_whose_recorded_failure_is_retryable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    checkpoint = start(path)
    api = ThemeFailure(FailureKind.API_FAILED, "embedding failed: 503")

    async def record() -> None:
        await checkpoint.theme_finished("xyzzy", UNKNOWN)
        await checkpoint.theme_finished("fruit", api)

    asyncio.run(record())
    checkpoint.close()
    recorded = read_checkpoint(path)

    assert recorded is not None
    assert recorded.themes == {"xyzzy": UNKNOWN, "fruit": api}
    assert recorded.failed_themes == {"xyzzy": UNKNOWN}  # decided by the kind


@pytest.mark.parametrize(
    "failed",
    [
        b'"embedding failed: text only"',
        b'{"kind": "lost", "reason": "?"}',
        b'{"kind": "api_failed"}',
    ],
)
def test_a_failure_record_without_a_known_kind_and_a_reason_is_refused(
    tmp_path: Path, failed: bytes
) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    start(path).close()
    with path.open("ab") as file:
        file.write(b'{"theme": "xyzzy", "failed": ' + failed + b"}\n")

    with pytest.raises(
        InputError, match=r"run_checkpoint.jsonl line 2: a record that does not fit"
    ):
        read_checkpoint(path)


def older_score_record(words: list[str], score: PuzzleScore) -> bytes:
    """A puzzle record as a version before the group difficulty figures wrote it."""
    recorded = msgspec.to_builtins(score)
    del recorded["closeness"], recorded["group_ease"]
    return msgspec.json.encode({"puzzle": words, "score": recorded}) + b"\n"


def test_a_score_recorded_before_the_group_figures_is_left_to_be_scored_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    checkpoint = start(path)
    newer_words = [f"other{n}" for n in range(16)]
    newer = a_score(seed=1)

    async def record() -> None:
        await checkpoint.theme_finished("planets", None)
        await checkpoint.puzzle_scored(newer_words, newer)

    asyncio.run(record())
    checkpoint.close()
    with path.open("ab") as file:
        file.write(older_score_record(WORDS, a_score()))

    with caplog.at_level(logging.INFO, logger="asyncpipe.run.checkpoint"):
        recorded = read_checkpoint(path)

    assert recorded is not None
    assert recorded.themes == {"planets": None}
    assert recorded.scores == {tuple(newer_words): newer}
    assert "1 puzzle scores were recorded before group difficulty" in caplog.text


def test_a_run_resumed_from_an_older_checkpoint_writes_the_same_bytes_as_an_uninterrupted_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_params(workdir / "params.yaml").params
    generation = defaults.puzzle_generation.model_copy(update={"total_puzzle_count": 6})
    params = defaults.model_copy(update={"puzzle_generation": generation})
    # Keep the checkpoint a complete run would delete: it then records every theme and score.
    monkeypatch.setattr(Checkpoint, "discard", Checkpoint.close)
    generate(params, workdir, provider="glove")
    outputs = [workdir / "data/outputs/final_puzzles.json", workdir / "reports/puzzle_quality.json"]
    uninterrupted = [output.read_bytes() for output in outputs]
    path = workdir / "data/cache/run_checkpoint.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    older = [
        older_score_record(record["puzzle"], msgspec.convert(record["score"], PuzzleScore))
        if "puzzle" in record
        else line
        for line, record in ((line, msgspec.json.decode(line)) for line in lines)
    ]
    assert sum(b'"puzzle"' in line for line in older) > 0
    path.write_bytes(b"".join(older))
    # The complete run recorded its batch; an interrupted one would not have.
    (workdir / "data/history/published.jsonl").unlink()

    generate(params, workdir, provider="glove", resume=True)

    assert [output.read_bytes() for output in outputs] == uninterrupted
    metadata = json.loads((workdir / "data/outputs/puzzle_metadata.json").read_text())
    assert metadata["resumed"] is True
    assert metadata["run_statistics"]["puzzle_scores_resumed"] == 0


def test_no_file_means_nothing_to_resume(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path / "missing.jsonl") is None


def test_a_last_line_cut_short_is_ignored_and_overwritten_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    checkpoint = start(path)
    asyncio.run(checkpoint.theme_finished("planets", None))
    checkpoint.close()
    with path.open("ab") as file:
        file.write(b'{"theme": "fru')  # a kill in the middle of a record

    recorded = read_checkpoint(path)
    assert recorded is not None
    assert recorded.themes == {"planets": None}

    resumed = Checkpoint.resume(path, recorded)
    asyncio.run(resumed.theme_finished("fruit", None))
    resumed.close()
    again = read_checkpoint(path)
    assert again is not None
    assert again.themes == {"planets": None, "fruit": None}
    assert b"fru\n" not in path.read_bytes() and b'"fru{' not in path.read_bytes()


def test_a_broken_line_inside_the_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    checkpoint = start(path)
    asyncio.run(checkpoint.theme_finished("planets", None))
    checkpoint.close()
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))

    with pytest.raises(InputError, match=r"run_checkpoint.jsonl line 2: not JSON.*--resume"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "content", [b"", b"[1, 2]\n", b'{"checkpoint": 99}\n', b'{"theme": "a"}\n']
)
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match="run_checkpoint.jsonl line 1"):
        read_checkpoint(path)


def test_starting_afresh_replaces_an_earlier_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    old = start(path)
    asyncio.run(old.theme_finished("planets", None))
    old.close()
    start(path, {"b": 2}).close()

    recorded = read_checkpoint(path)
    assert recorded is not None
    assert recorded.themes == {} and recorded.settings == {"b": 2}


def test_discard_deletes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    start(path).discard()
    assert not path.exists()


def test_other_settings_are_refused_naming_the_keys_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    before = run_settings(Params(), "glove")
    changed = Params.model_validate({"puzzle_generation": {"total_puzzle_count": 40}})
    start(path, before).close()
    recorded = read_checkpoint(path)
    assert recorded is not None

    with pytest.raises(ConfigError) as refused:
        recorded.refuse_unless_same_settings(path, run_settings(changed, "glove"))
    message = str(refused.value)
    assert "puzzle_generation.total_puzzle_count: 80 -> 40" in message
    assert "without --resume" in message
    with pytest.raises(ConfigError, match=r"provider.name: \"glove\" -> \"gemini\""):
        recorded.refuse_unless_same_settings(path, run_settings(Params(), "gemini"))
    recorded.refuse_unless_same_settings(path, before)  # the same settings pass


def test_settings_leave_out_what_never_changes_the_puzzles() -> None:
    base = run_settings(Params(), "gemini")
    tuned = Params.model_validate(
        {
            "concurrency": {"max_concurrent_requests": 2, "shutdown_grace_seconds": 1},
            "gemini": {"requests_per_minute": 10, "transport": "sdk"},
            "logging": {"level": "DEBUG"},
            "output": {"embedding_table_format": "parquet"},
        }
    )
    other_model = Params.model_validate({"gemini": {"embedding_dimension": 768}})

    assert run_settings(tuned, "gemini") == base
    assert run_settings(other_model, "gemini") != base


def test_other_inputs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run_checkpoint.jsonl"
    candidates = {"planets": ("mars", "venus"), "fruit": ("apple",)}
    digest = inputs_digest(a_selection(), candidates)
    Checkpoint.start(path, {}, digest).close()
    recorded = read_checkpoint(path)
    assert recorded is not None

    recorded.refuse_unless_same_inputs(path, inputs_digest(a_selection(), dict(candidates)))
    with pytest.raises(ConfigError, match="the theme source, the vector index or paths.history"):
        recorded.refuse_unless_same_inputs(
            path, inputs_digest(a_selection(), {**candidates, "fruit": ("pear",)})
        )
    with pytest.raises(ConfigError, match="history"):
        recorded.refuse_unless_same_inputs(
            path, inputs_digest(a_selection(), candidates, history="ab12")
        )
    with pytest.raises(ConfigError):
        recorded.refuse_unless_same_inputs(
            path, inputs_digest(a_selection(("fruit", "planets")), candidates)
        )
