"""asyncpipe.io.history_file: reading the published batches, appending one atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncpipe.errors import InputError
from asyncpipe.io.history_file import append_batch, published_batch, read_history
from asyncpipe.puzzle.history import PublishedBatch, PublishedGroup


def _batch(number: int) -> PublishedBatch:
    return published_batch(
        f"puzzles {number}".encode(),
        [("Trees", ("oak", "elm", "ash", "pine")), ("Gems", ("ruby", "opal", "jade", "onyx"))],
        set_name=None,
        random_seed=number,
    )


def test_no_file_is_an_empty_history(tmp_path: Path) -> None:
    history = read_history(tmp_path / "published.jsonl")
    assert history.batches == ()
    assert history.digest == ""


def test_appended_batches_read_back_in_order_one_json_line_each(tmp_path: Path) -> None:
    path = tmp_path / "history" / "published.jsonl"
    assert append_batch(path, _batch(1))
    assert append_batch(path, _batch(2))

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["random_seed"] for line in lines] == [1, 2]
    assert path.read_bytes().endswith(b"\n")
    history = read_history(path)
    assert history.batches == (_batch(1), _batch(2))
    assert history.batches[0].groups[0] == PublishedGroup("Trees", ("oak", "elm", "ash", "pine"))
    assert history.batches[0].batch.startswith("sha256:")
    assert len(history.digest) == 64


def test_the_same_batch_twice_in_a_row_is_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "published.jsonl"
    append_batch(path, _batch(1))
    assert not append_batch(path, _batch(1))
    assert len(read_history(path).batches) == 1


def test_a_hand_edited_last_line_without_its_newline_stays_apart_from_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "published.jsonl"
    append_batch(path, _batch(1))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    append_batch(path, _batch(2))
    assert len(read_history(path).batches) == 2


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"history": 1, "batch": "x", "groups": [', "not a line of JSON"),
        ('{"history": 1, "batch": "x"}', "not a history record"),
        (
            '{"history": 1, "batch": "x", "groups": [{"category": "Trees", "tiles": "oak"}]}',
            "not a history record",
        ),
        ("[1, 2]", "not a history record"),
    ],
    ids=["torn", "no groups", "tiles not a list", "not an object"],
)
def test_a_damaged_line_is_an_input_error_naming_the_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "published.jsonl"
    append_batch(path, _batch(1))
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
    with pytest.raises(InputError) as caught:
        read_history(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 2: damaged history, {problem}")
    assert "\n" not in message


def test_a_damaged_history_is_left_as_it_was_by_an_append(tmp_path: Path) -> None:
    path = tmp_path / "published.jsonl"
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(InputError):
        append_batch(path, _batch(1))
    assert path.read_text(encoding="utf-8") == "not json\n"
