"""Atomic JSON writes and their file modes, reading input files, and the CSV and Parquet tables."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as arrow
import pytest
from pyarrow import parquet

import asyncpipe
from asyncpipe.errors import ConfigError, InputError, OutputError
from asyncpipe.io import files
from asyncpipe.io.files import EntriesAsWritten, read_input, read_json, write_json
from asyncpipe.io.tables import EmbeddingRows, write_embedding_table

HEADER_START = ["theme", "word", "word_type", "similarity_to_theme", "rank"]


def write_table(target: Path, rows: EmbeddingRows, table_format: str, precision: int) -> None:
    """Write `rows` as the one block of a table, of the dimension its vectors have."""
    dimension = rows.vectors.shape[1] if rows.vectors.ndim == 2 else 0
    write_embedding_table(target, [rows], dimension, table_format, precision)


def sample_rows() -> EmbeddingRows:
    vectors = np.array(
        [
            [0.123456789, -0.5, 1.0],
            [1e-7, 2.5, -0.333333333],
            [-1.0, 0.0, 0.987654321],
            [0.25, -0.75, 0.0004999],
        ],
        dtype=np.float32,
    )
    return EmbeddingRows(
        themes=["Food, drink", "Food, drink", 'The "Beatles"', "Plain"],
        words=["Food, drink", "wine", 'say "hi"', "multi\nline"],
        word_types=["theme", "candidate", "candidate", "variant"],
        similarities=[1.0, 0.87654321, 0.5, -0.25],
        ranks=[0, 1, 2, -1],
        vectors=vectors,
    )


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def random_blocks(sizes: list[int], seed: int, similarity: float) -> list[EmbeddingRows]:
    """One block per size, of 4-value random vectors: theme N, words "word N.row"."""
    generator = np.random.default_rng(seed)
    return [
        EmbeddingRows(
            [f"theme {block}"] * size,
            [f"word {block}.{row}" for row in range(size)],
            ["candidate"] * size,
            [similarity] * size,
            list(range(1, size + 1)),
            generator.normal(size=(size, 4)).astype(np.float32),
        )
        for block, size in enumerate(sizes)
    ]


def test_write_json_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "out.json"

    write_json(target, {"first": 1})
    write_json(target, {"second": [1, 2], "text": "héllo"})

    assert json.loads(target.read_text(encoding="utf-8")) == {"second": [1, 2], "text": "héllo"}
    assert [path.name for path in target.parent.iterdir()] == ["out.json"]


def test_write_json_layout_is_stable(tmp_path: Path) -> None:
    target = tmp_path / "out.json"

    write_json(target, {"b": 1, "a": "ü"})

    assert target.read_text(encoding="utf-8") == '{\n  "b": 1,\n  "a": "ü"\n}\n'


@pytest.mark.parametrize("bad_value", [object(), float("nan")], ids=["object", "nan"])
def test_a_value_json_cannot_encode_leaves_the_previous_file_and_no_temporary_file(
    tmp_path: Path, bad_value: object
) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"kept": True})
    before = target.read_bytes()

    with pytest.raises((OutputError, TypeError, ValueError)):
        write_json(target, {"broken": bad_value})

    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("bad_value", [object(), float("nan")], ids=["object", "nan"])
def test_a_value_json_cannot_encode_raises_output_error_naming_the_path(
    tmp_path: Path, bad_value: object
) -> None:
    target = tmp_path / "out.json"

    with pytest.raises(OutputError, match=str(target)):
        write_json(target, {"broken": bad_value})


def test_a_folder_that_cannot_be_created_raises_output_error_naming_the_path(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "outputs"
    blocker.write_text("a regular file where the folder should be")
    target = blocker / "final_puzzles.json"

    with pytest.raises(OutputError, match=str(target)):
        write_json(target, {"puzzle_1": {}})

    assert blocker.read_text() == "a regular file where the folder should be"


@pytest.fixture
def small_file_size_limit() -> Iterator[int]:
    """Limit files this process writes to 4 KiB, so a large write fails with EFBIG, even as root."""
    limit = 65_536
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


def test_a_write_failing_midway_keeps_the_previous_file_and_raises_output_error(
    tmp_path: Path, small_file_size_limit: int
) -> None:
    target = tmp_path / "final_puzzles.json"
    write_json(target, {"kept": True})
    before = target.read_bytes()

    with pytest.raises(OutputError, match=str(target)):
        write_json(target, {"words": ["word"] * small_file_size_limit})

    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["final_puzzles.json"]


def test_a_table_failing_midway_keeps_the_previous_table(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    write_table(target, sample_rows(), "csv", 6)
    before = target.read_bytes()
    rows = sample_rows()
    broken = EmbeddingRows(
        rows.themes,
        rows.words,
        rows.word_types,
        [0.1, 0.2, "not a number", 0.4],  # type: ignore[list-item]
        rows.ranks,
        rows.vectors,
    )

    with pytest.raises((OutputError, TypeError)):
        write_table(target, broken, "csv", 6)

    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["table.csv"]


def test_written_files_take_the_umask_in_force_when_first_written_not_at_import(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.json"
    script = (
        "import os, pathlib\n"
        "from asyncpipe.io.files import write_json\n"
        "os.umask(0o027)\n"
        f"write_json(pathlib.Path({str(target)!r}), {{}})\n"
    )
    package_root = str(Path(asyncpipe.__file__).parents[1])
    subprocess.run(
        [sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": package_root}
    )

    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_without_proc_the_umask_is_read_by_setting_it_back_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_force = files._umask_from_proc()
    if in_force is None:
        pytest.skip("no /proc/self/status to compare with")
    monkeypatch.setattr(files, "_umask_from_proc", lambda: None)
    files._umask.cache_clear()
    try:
        assert files._umask() == in_force
    finally:
        files._umask.cache_clear()
    monkeypatch.undo()
    assert files._umask_from_proc() == in_force


def _read_worded(path: Path, **wording: object) -> bytes | None:
    """`read_input` with a word for each failure, so a test sees which one was chosen."""
    options: dict[str, object] = {
        "missing": "MISSING",
        "directory": "DIRECTORY",
        "unreadable": lambda error: f"UNREADABLE {type(error).__name__}",
    }
    options.update(wording)
    return read_input(path, **options)  # type: ignore[call-overload, no-any-return]


def test_read_input_returns_the_bytes_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"Planets\r\n\xff")

    assert _read_worded(tmp_path / "in.txt") == b"Planets\r\n\xff"


def test_read_input_of_a_missing_file_raises_the_missing_wording(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        _read_worded(tmp_path / "absent.txt")

    assert str(raised.value) == "MISSING"


def test_read_input_of_a_missing_file_answers_none_when_missing_is_expected(
    tmp_path: Path,
) -> None:
    assert _read_worded(tmp_path / "absent.txt", missing=None) is None


def test_read_input_of_a_directory_raises_the_directory_wording(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        _read_worded(tmp_path)

    assert str(raised.value) == "DIRECTORY"


def test_read_input_of_a_directory_without_its_own_wording_is_worded_as_unreadable(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as raised:
        _read_worded(tmp_path, directory=None)

    assert str(raised.value) == "UNREADABLE IsADirectoryError"


def test_read_input_under_a_file_raises_the_unreadable_wording(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(InputError) as raised:
        _read_worded(tmp_path / "file" / "in.txt")

    assert str(raised.value) == "UNREADABLE NotADirectoryError"


def test_read_input_of_a_symlink_loop_raises_the_unreadable_wording(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")

    with pytest.raises(InputError) as raised:
        _read_worded(tmp_path / "loop")

    assert str(raised.value) == "UNREADABLE OSError"


@pytest.mark.parametrize("case", ["missing", "directory", "unreadable"])
def test_read_input_raises_the_error_type_it_is_given(tmp_path: Path, case: str) -> None:
    (tmp_path / "file").write_text("x")
    path = {
        "missing": tmp_path / "absent",
        "directory": tmp_path,
        "unreadable": tmp_path / "file" / "in",
    }[case]

    with pytest.raises(ConfigError):
        _read_worded(path, error=ConfigError)


def test_read_json_of_a_missing_file_raises_input_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "themes" / "selected_themes.json"

    with pytest.raises(InputError, match="selected_themes.json") as raised:
        read_json(missing, "selected themes")

    assert "not found" in str(raised.value)


@pytest.mark.parametrize(
    "content", [b'{"themes": [', b"", b"\xff\xfe not utf-8"], ids=["truncated", "empty", "binary"]
)
def test_read_json_of_a_broken_file_raises_input_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    broken = tmp_path / "candidate_words.json"
    broken.write_bytes(content)

    with pytest.raises(InputError, match="candidate_words.json"):
        read_json(broken, "candidate words")


def test_read_json_of_a_folder_raises_input_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "selected_themes.json"
    folder.mkdir()

    with pytest.raises(InputError, match="selected_themes.json"):
        read_json(folder, "selected themes")


def test_read_json_returns_what_write_json_wrote(tmp_path: Path) -> None:
    document = {"themes": ["Birds", "Trees"], "total_count": 2, "nested": {"score": 0.5}}
    write_json(tmp_path / "x.json", document)

    assert read_json(tmp_path / "x.json", "x") == document


def test_csv_table_has_the_older_pipelines_columns(tmp_path: Path) -> None:
    target = tmp_path / "all_embeddings.csv"

    write_table(target, sample_rows(), "csv", 6)

    header = read_csv(target)[0]
    assert header == HEADER_START + ["embedding_dim_1", "embedding_dim_2", "embedding_dim_3"]


def test_csv_values_are_rounded_to_the_given_precision(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"

    write_table(target, sample_rows(), "csv", 3)

    rows = read_csv(target)[1:]
    # The leading fields as the older pipeline printed them; the vector values rounded
    # and printed in their shortest form, every zero as 0 (never -0).
    assert rows[0][3:] == ["1.000", "0", "0.123", "-0.5", "1"]
    assert rows[1][3] == "0.877"
    assert rows[1][5:] == ["0", "2.5", "-0.333"]
    assert rows[3][7] == "0"


def test_csv_fields_with_commas_quotes_and_newlines_parse_back(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    expected = sample_rows()

    write_table(target, expected, "csv", 6)

    rows = read_csv(target)[1:]
    assert len(rows) == 4
    assert [row[0] for row in rows] == list(expected.themes)
    assert [row[1] for row in rows] == list(expected.words)
    assert [row[2] for row in rows] == list(expected.word_types)
    assert [int(row[4]) for row in rows] == list(expected.ranks)
    assert all(len(row) == 5 + 3 for row in rows)
    parsed = np.array([[float(value) for value in row[5:]] for row in rows])
    np.testing.assert_allclose(parsed, expected.vectors, atol=5e-7)


def test_csv_table_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "tables" / "puzzle_embeddings.csv"

    write_table(target, sample_rows(), "csv", 6)
    write_table(target, sample_rows(), "csv", 2)

    assert [path.name for path in target.parent.iterdir()] == ["puzzle_embeddings.csv"]
    assert read_csv(target)[1][5] == "0.12"


def test_parquet_table_reads_back_with_the_same_rows_and_float32_vectors(tmp_path: Path) -> None:
    target = tmp_path / "all_embeddings.parquet"
    expected = sample_rows()

    write_table(target, expected, "parquet", 6)

    table = parquet.read_table(target)
    assert table.column_names == HEADER_START + ["embedding"]
    assert table.column("theme").to_pylist() == list(expected.themes)
    assert table.column("word").to_pylist() == list(expected.words)
    assert table.column("word_type").to_pylist() == list(expected.word_types)
    assert table.column("similarity_to_theme").to_pylist() == list(expected.similarities)
    assert table.column("rank").to_pylist() == list(expected.ranks)
    embedding_type = table.schema.field("embedding").type
    assert embedding_type.value_type == arrow.float32()
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert vectors.shape == (4, 3)
    np.testing.assert_array_equal(vectors, expected.vectors)
    assert [path.name for path in tmp_path.iterdir()] == ["all_embeddings.parquet"]


def test_a_parquet_table_with_no_rows_is_written_and_reads_back_empty(tmp_path: Path) -> None:
    # A run that generates no puzzle still writes its (empty) puzzle embedding table.
    target = tmp_path / "puzzle_embeddings.parquet"
    empty = EmbeddingRows([], [], [], [], [], np.zeros((0, 0), dtype=np.float32))

    write_table(target, empty, "parquet", 6)

    table = parquet.read_table(target)
    assert table.num_rows == 0
    assert table.column_names[:5] == HEADER_START


def test_a_csv_table_with_no_rows_has_only_the_fixed_header(tmp_path: Path) -> None:
    target = tmp_path / "puzzle_embeddings.csv"
    empty = EmbeddingRows([], [], [], [], [], np.zeros((0, 0), dtype=np.float32))

    write_table(target, empty, "csv", 6)

    assert read_csv(target) == [HEADER_START]


def test_rows_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        EmbeddingRows(["a", "b"], ["a"], ["theme"], [1.0], [0], np.zeros((1, 3), np.float32))


def test_csv_rows_printed_in_chunks_keep_their_order_and_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncpipe.io import tables

    monkeypatch.setattr(tables, "_CSV_CHUNK_VALUES", 12)  # 3 rows of 4 values a chunk
    blocks = random_blocks([1, 5, 2, 0, 4], seed=7, similarity=0.25)
    target = tmp_path / "table.csv"

    write_embedding_table(target, blocks, 4, "csv", 4)

    rows = read_csv(target)[1:]
    assert [row[1] for row in rows] == [word for block in blocks for word in block.words]
    values = np.array([[float(value) for value in row[5:]] for row in rows])
    expected = np.concatenate([block.vectors for block in blocks]).astype(np.float64)
    np.testing.assert_array_equal(values, np.round(expected, 4) + 0.0)


def test_parquet_row_groups_are_bounded_in_bytes_of_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncpipe.io import tables

    # 3 rows of 4 float32 values a group at most; whole blocks are gathered.
    monkeypatch.setattr(tables, "_ROW_GROUP_BYTES", 3 * 4 * 4)
    blocks = random_blocks([2, 2, 1, 4, 1], seed=11, similarity=0.5)
    target = tmp_path / "table.parquet"

    write_embedding_table(target, blocks, 4, "parquet", 6)

    metadata = parquet.ParquetFile(target).metadata
    assert [metadata.row_group(n).num_rows for n in range(metadata.num_row_groups)] == [4, 5, 1]
    table = parquet.read_table(target)
    assert table.column("word").to_pylist() == [w for block in blocks for w in block.words]
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(vectors, np.concatenate([block.vectors for block in blocks]))


@pytest.mark.parametrize("printers", [2, 3])
def test_csv_chunks_printed_side_by_side_make_the_file_one_printer_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, printers: int
) -> None:
    from asyncpipe.io import tables

    monkeypatch.setattr(tables, "_CSV_CHUNK_VALUES", 8)  # 2 rows of 4 values a chunk
    blocks = random_blocks([1, 3, 2, 1, 1, 4, 0, 2, 5, 1], seed=5, similarity=0.125)
    alone, side_by_side = tmp_path / "alone.csv", tmp_path / "side_by_side.csv"

    monkeypatch.setattr(tables, "_CSV_PRINTERS", 1)
    write_embedding_table(alone, blocks, 4, "csv", 5)
    monkeypatch.setattr(tables, "_CSV_PRINTERS", printers)
    write_embedding_table(side_by_side, blocks, 4, "csv", 5)

    assert side_by_side.read_bytes() == alone.read_bytes()
    rows = read_csv(side_by_side)[1:]
    assert [row[1] for row in rows] == [word for block in blocks for word in block.words]


def test_parquet_vectors_are_not_dictionary_encoded_and_the_words_are(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"

    write_table(target, sample_rows(), "parquet", 6)

    group = parquet.ParquetFile(target).metadata.row_group(0)
    encodings = {
        group.column(n).path_in_schema.split(".")[0]: set(group.column(n).encodings)
        for n in range(group.num_columns)
    }
    assert not any("DICTIONARY" in encoding for encoding in encodings["embedding"])
    assert any("DICTIONARY" in encoding for encoding in encodings["word"])


def test_a_document_written_a_megabyte_at_a_time_is_what_json_dumps_gives(
    tmp_path: Path,
) -> None:
    document = {
        f"theme {n}": {"words": [f"wörd{n}-{m}" for m in range(50)], "scores": [n / 7] * 50}
        for n in range(3000)
    }
    target = tmp_path / "candidates.json"
    write_json(target, document)

    expected = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    assert len(expected) > 3 * 1024 * 1024  # several writes
    assert target.read_text(encoding="utf-8") == expected


def test_entries_made_as_written_give_the_bytes_of_the_whole_dict_one_entry_at_a_time(
    tmp_path: Path,
) -> None:
    class Entry(dict[str, object]):  # a dict json encodes, that a weak reference can watch
        pass

    themes = [f"theme {n}" for n in range(3000)]

    def entry(theme: str) -> Entry:
        return Entry(words=[f"{theme}-{m}" for m in range(50)], scores=[len(theme) / 7] * 50)

    made: list[str] = []
    alive: list[int] = []
    watched: list[weakref.ref[Entry]] = []

    def made_now(theme: str) -> Entry:
        made.append(theme)
        alive.append(sum(1 for ref in watched if ref() is not None))
        value = entry(theme)
        watched.append(weakref.ref(value))
        return value

    target = tmp_path / "candidates.json"
    entries = EntriesAsWritten(len(themes), lambda: ((theme, made_now(theme)) for theme in themes))
    write_json(target, {"candidates": entries, "metadata": {"n": 1}})

    whole = {"candidates": {theme: entry(theme) for theme in themes}, "metadata": {"n": 1}}
    expected = json.dumps(whole, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    assert target.read_text(encoding="utf-8") == expected
    assert made == themes  # each entry made once, in order
    assert max(alive) <= 1  # the entries before were let go as they were written


def test_no_entries_made_as_written_is_an_empty_object(tmp_path: Path) -> None:
    target = tmp_path / "empty.json"
    write_json(target, {"candidates": EntriesAsWritten(0, lambda: iter(()))})

    assert json.loads(target.read_text()) == {"candidates": {}}
    assert target.read_text() == json.dumps({"candidates": {}}, indent=2) + "\n"
