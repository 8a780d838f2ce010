"""The all-embeddings table's manifest: written again only when its content changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from asyncpipe.io.documents import embedding_analysis_document
from asyncpipe.io.table_manifest import (
    forget,
    manifest_path,
    record,
    table_fingerprint,
    up_to_date,
)
from asyncpipe.puzzle.embedded import EmbeddedTheme, VectorRows
from asyncpipe.puzzle.ranking import cosine_to, rank_candidates
from tests.support import ALL_TABLE, run_cli

SETTINGS = {"format": "csv", "precision": 6, "provider": ["glove", "glove-6B-50d", 50, None]}


def theme(words: list[str], seed: int = 0) -> EmbeddedTheme:
    generator = np.random.default_rng(seed)
    theme_vector = generator.normal(size=4).astype(np.float32)
    vectors = generator.normal(size=(len(words), 4)).astype(np.float32)
    scores = cosine_to(theme_vector, vectors)
    ranked = rank_candidates("t", words, scores)
    return EmbeddedTheme(theme_vector, tuple(words), VectorRows.of(vectors), scores, ranked)


def test_a_recorded_table_is_up_to_date_for_its_own_fingerprint_only(tmp_path: Path) -> None:
    table = tmp_path / "all.csv"
    table.write_text("header\nrow\n")
    fingerprint = table_fingerprint({"Birds": theme(["crow", "wren"])}, SETTINGS)

    assert not up_to_date(table, fingerprint)  # no manifest yet
    record(table, fingerprint)
    assert up_to_date(table, fingerprint)
    assert not up_to_date(table, "0" * 64)

    table.write_text("header\nrow\nanother row\n")  # changed behind our back
    assert not up_to_date(table, fingerprint)


def test_a_missing_table_or_a_broken_manifest_is_not_up_to_date(tmp_path: Path) -> None:
    table = tmp_path / "all.csv"
    table.write_text("x\n")
    record(table, "f")
    manifest_path(table).write_text("{not json")
    assert not up_to_date(table, "f")
    manifest_path(table).write_text(json.dumps(["a", "list"]))
    assert not up_to_date(table, "f")

    record(table, "f")
    table.unlink()
    assert not up_to_date(table, "f")
    forget(table)
    assert not manifest_path(table).exists()


def test_the_fingerprint_follows_every_column_and_setting() -> None:
    base = {"Birds": theme(["crow", "wren"])}
    fingerprint = table_fingerprint(base, SETTINGS)

    assert table_fingerprint({"Birds": theme(["crow", "wren"])}, SETTINGS) == fingerprint
    others = [
        table_fingerprint({"Bird": theme(["crow", "wren"])}, SETTINGS),
        table_fingerprint({"Birds": theme(["crow", "robin"])}, SETTINGS),
        table_fingerprint({"Birds": theme(["crow", "wren"], seed=1)}, SETTINGS),
        table_fingerprint(base, {**SETTINGS, "precision": 5}),
        table_fingerprint(base, {**SETTINGS, "format": "parquet"}),
        table_fingerprint(base, {**SETTINGS, "provider": ["gemini", "m", 768, "T"]}),
    ]
    assert fingerprint not in others
    assert len(set(others)) == len(others)


def test_a_rerun_of_the_same_batch_leaves_the_table_alone(workdir: Path) -> None:
    first = run_cli(["run", "--count", "3"], cwd=workdir)
    assert first.returncode == 0, first.stderr
    table = workdir / ALL_TABLE
    written = table.stat().st_mtime_ns
    contents = table.read_bytes()
    (workdir / "data/history/published.jsonl").unlink()
    os.utime(table, ns=(written, written))

    again = run_cli(["run", "--count", "3"], cwd=workdir)

    assert again.returncode == 0, again.stderr
    assert "is up to date" in again.stderr
    assert table.stat().st_mtime_ns == written
    assert table.read_bytes() == contents

    # Another precision is another table: written again, and then up to date itself.
    (workdir / "data/history/published.jsonl").unlink()  # the same batch again
    params = (workdir / "params.yaml").read_text()
    (workdir / "params.yaml").write_text(params.replace("csv_precision: 6", "csv_precision: 4"))
    other = run_cli(["run", "--count", "3"], cwd=workdir)
    assert other.returncode == 0, other.stderr
    assert "is up to date" not in other.stderr
    assert table.read_bytes() != contents
    assert up_to_date(table, json.loads(manifest_path(table).read_text())["fingerprint"])


def test_a_theme_let_go_of_its_vectors_reports_as_it_did() -> None:
    """What a window keeps of its themes (`ThemeRecord`) gives the same fingerprint and
    the same similarity figures as the themes did, vectors and all."""
    embedded = {
        "Dogs": theme(["dog", "Dogs", "puppy", "hound", "dogs"], seed=1),
        "Cats": theme(["cat", "kitten", "tabby"], seed=2),
    }
    records = {name: found.record() for name, found in embedded.items()}
    settings = {"format": "csv", "precision": 6}
    provider = {"name": "glove", "dimension": 8}

    assert table_fingerprint(records, settings) == table_fingerprint(embedded, settings)
    assert embedding_analysis_document(records, [], provider) == embedding_analysis_document(
        embedded, [], provider
    )
    for name, found in embedded.items():
        assert records[name].ranked_scores.tolist() == list(found.ranked.scores)
        assert records[name].ranked_rows.tolist() == list(found.ranked.source_rows)
