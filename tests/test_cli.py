"""The command line end to end: real `python -m asyncpipe` subprocesses in scratch folders.

Runs that several tests inspect are made once per module (`baseline`), and
the enhance-only runs reuse its stage 1 and 2 files, to keep the set fast.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import shutil
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as arrow
import pytest
from pyarrow import parquet

from asyncpipe.io.vector_index import VocabularyIndex
from asyncpipe.puzzle.words import is_variant_of_theme, variant_key
from asyncpipe.run.lock import exclusive_run
from asyncpipe.run.pipeline import Pipeline, run_enhance, run_select_candidates, run_select_themes
from asyncpipe.settings.params_file import Overrides, load_params
from asyncpipe.settings.workspace import Workspace
from tests.gemini_server import GeminiTestServer, ServerConfig
from tests.io.legacy_index import write_legacy_index
from tests.support import (
    ALL_TABLE,
    ANALYSIS,
    CANDIDATES,
    FINAL,
    METADATA,
    PUZZLE_TABLE,
    REFERENCE,
    SELECTED,
    load,
    run_cli,
    write_params,
)

pytestmark = pytest.mark.slow

#: A key distinctive enough that finding it in a log or a file cannot be chance.
GEMINI_KEY = "AIzaSy-asyncpipe-CLI-2e6b9d4f17"

TABLE_START = ["theme", "word", "word_type", "similarity_to_theme", "rank"]
GLOVE_COLUMNS = TABLE_START + [f"embedding_dim_{number}" for number in range(1, 51)]

#: Themes whose words any reasonable GloVe vocabulary knows.
COMMON_THEMES = [
    "Birds",
    "Fruit",
    "Weather",
    "Colors",
    "Sports",
    "Vegetables",
    "Furniture",
    "Clothing",
    "Insects",
    "Tools",
    "Jobs",
    "Vehicles",
    "Drinks",
    "Rivers",
    "Metals",
    "Flowers",
]


def new_workdir(parent: Path, changes: dict[str, Any] | None = None) -> Path:
    """A folder holding the project's params.yaml, with dotted keys changed."""
    parent.mkdir(parents=True, exist_ok=True)
    write_params(parent, changes or {})
    return parent


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def assert_one_clear_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def assert_complete_puzzles(
    puzzles: dict[str, Any], count: int, candidates: dict[str, Any] | None = None
) -> None:
    """`count` puzzles of 4 themes x 4 words, each group drawn from its theme's candidates."""
    assert list(puzzles) == [f"puzzle_{number}" for number in range(1, count + 1)]
    for name, puzzle in puzzles.items():
        words, themes = puzzle["words"], puzzle["themes"]
        scores = puzzle["theme_similarity_scores"]
        assert len(themes) == 4 and len(set(themes)) == 4, name
        assert len(words) == 16 and len(set(words)) == 16, name
        keys = {variant_key(word) for word in words}
        assert len(keys) == 16, f"{name} holds two forms of one word: {words}"
        assert len(scores) == 16 and all(isinstance(score, float) for score in scores)
        assert all(-1.0 <= score <= 1.0 for score in scores)
        for position, theme in enumerate(themes):
            group = words[4 * position : 4 * position + 4]
            group_scores = scores[4 * position : 4 * position + 4]
            assert group_scores == sorted(group_scores, reverse=True), name
            for word in words:
                assert not is_variant_of_theme(word, theme), f"{word!r} names {theme!r}"
            if candidates is not None:
                assert set(group) <= set(candidates[theme]["words"]), (name, theme)


# --- one ordinary run, inspected by several tests ---------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = new_workdir(tmp_path_factory.mktemp("baseline"))
    result = run_cli(["run", "--count", "3"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def test_run_writes_the_selected_themes_file(baseline: Path) -> None:
    selected = load(baseline, SELECTED)

    assert selected["total_count"] == 12 == len(selected["themes"])
    assert len(set(selected["themes"])) == 12
    assert selected["selection_method"] == "random"
    assert selected["random_seed"] == 42
    assert selected["filters"]["exclude_categories"] == [
        "General reference",
        "Research",
        "Academic disciplines",
        "Library science",
    ]
    assert not set(selected["themes"]) & set(selected["filters"]["exclude_categories"])


def test_run_writes_the_candidate_words_file(baseline: Path) -> None:
    document = load(baseline, CANDIDATES)
    selected = load(baseline, SELECTED)

    assert set(document) == {"candidates", "metadata"}
    candidates = document["candidates"]
    assert set(selected["themes"]) <= set(candidates)
    sources = document["metadata"]["theme_sources"]
    for theme, entry in candidates.items():
        assert 4 <= entry["word_count"] <= 50, theme
        assert entry["word_count"] == len(entry["words"])
        assert len({variant_key(word) for word in entry["words"]}) == entry["word_count"]
        assert sources[theme] == entry.get("source", "neighbours")
        if entry.get("source") == "members":  # the built-in themes are all categories
            assert set(entry) == {"words", "word_count", "source", "category"}
            continue
        assert set(entry) == {"words", "similarity_scores", "word_count"}
        assert entry["word_count"] == len(entry["similarity_scores"])
        assert entry["similarity_scores"] == sorted(entry["similarity_scores"], reverse=True)
        assert min(entry["similarity_scores"]) >= 0.3
    assert set(sources.values()) == {"members"}
    assert document["metadata"]["candidate_source"] == "members"


def test_run_writes_complete_puzzles_grouped_theme_by_theme(baseline: Path) -> None:
    puzzles = load(baseline, FINAL)

    assert_complete_puzzles(puzzles, 3, load(baseline, CANDIDATES)["candidates"])
    themes = [theme for puzzle in puzzles.values() for theme in puzzle["themes"]]
    assert len(set(themes)) == 12
    assert set(themes) <= set(load(baseline, SELECTED)["themes"]) | set(
        load(baseline, SELECTED).get("spare_themes", [])
    )


def test_run_writes_the_puzzle_metadata(baseline: Path) -> None:
    metadata = load(baseline, METADATA)

    counts = metadata["counts"]
    assert counts["puzzles_requested"] == 3
    assert counts["puzzles_generated"] == 3
    assert metadata["failed_themes"] == {}
    assert metadata["failed_puzzles"] == {}
    timing = [value for key, value in metadata.items() if key.startswith("timing")]
    assert len(timing) == 1 and timing[0]
    assert metadata["provider"]["name"] == "glove"
    assert metadata["provider"]["model"] == "glove-6B-50d"
    assert metadata["provider"]["dimension"] == 50
    statistics = metadata["run_statistics"]
    # Every theme asks for itself and at least 4 candidates; texts several themes share are
    # embedded once, and the texts go in batches of up to concurrency.batch_size (100).
    assert statistics["texts_asked"] >= 12 * 5
    asked_for = statistics["texts_requested"] - statistics["texts_prefetched"]
    assert 12 * 5 <= asked_for <= statistics["texts_asked"]
    batches = math.ceil(statistics["texts_requested"] / 100)
    assert batches <= statistics["requests"] <= batches + 2
    assert statistics["retries"] == statistics["failed_requests"] == 0
    # GloVe is local: no persistent store, nothing read from or written to one.
    assert statistics["cache_hits_disk"] == 0
    assert "store_path" not in statistics
    assert not (baseline / "data/cache/embeddings.sqlite3").exists()


def test_run_writes_the_embedding_analysis(baseline: Path) -> None:
    analysis = load(baseline, ANALYSIS)

    assert analysis["provider"]["name"] == "glove"
    assert analysis["puzzle_word_similarity"]["count"] == 48
    assert analysis["embedding_summary"]["dimension"] == 50
    assert analysis["candidate_similarity"]["count"] >= 48


def test_run_writes_both_embedding_tables_with_the_older_columns(baseline: Path) -> None:
    puzzles = load(baseline, FINAL)
    candidates = load(baseline, CANDIDATES)["candidates"]

    puzzle_rows = read_table(baseline / PUZZLE_TABLE)
    all_rows = read_table(baseline / ALL_TABLE)

    for path in (PUZZLE_TABLE, ALL_TABLE):
        with open(baseline / path, newline="", encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == GLOVE_COLUMNS
    grid = [
        (name, theme, word, score)
        for name, puzzle in puzzles.items()
        for theme, word, score in zip(
            [t for t in puzzle["themes"] for _ in range(4)],
            puzzle["words"],
            puzzle["theme_similarity_scores"],
            strict=True,
        )
    ]
    assert [(r["word_type"], r["theme"], r["word"]) for r in puzzle_rows] == [g[:3] for g in grid]
    for row, (*_, score) in zip(puzzle_rows, grid, strict=True):
        assert float(row["similarity_to_theme"]) == pytest.approx(score, abs=2e-6)
        vector = np.array([float(row[f"embedding_dim_{n}"]) for n in range(1, 51)])
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    embedded_themes = {row["theme"] for row in all_rows}
    for theme in embedded_themes:
        rows = [row for row in all_rows if row["theme"] == theme]
        assert rows[0]["word_type"] == "theme" and rows[0]["word"] == theme
        assert len(rows) == 1 + candidates[theme]["word_count"]


# --- stages, determinism, flags --------------------------------------------------------


def test_the_three_stages_run_alone_give_the_same_puzzles_as_run(
    baseline: Path, tmp_path: Path
) -> None:
    folder = new_workdir(tmp_path)
    for stage, written in (
        ("select-themes", SELECTED),
        ("select-candidates", CANDIDATES),
        ("enhance", FINAL),
    ):
        result = run_cli([stage, "--count", "3"], cwd=folder)
        assert result.returncode == 0, result.stderr
        assert (folder / written).is_file(), stage

    assert (folder / FINAL).read_bytes() == (baseline / FINAL).read_bytes()


def test_two_runs_write_byte_identical_final_puzzles(baseline: Path, tmp_path: Path) -> None:
    folder = new_workdir(tmp_path)

    result = run_cli(["run", "--count", "3"], cwd=folder)

    assert result.returncode == 0, result.stderr
    assert (folder / FINAL).read_bytes() == (baseline / FINAL).read_bytes()


def test_final_puzzles_do_not_depend_on_max_concurrent_requests(
    baseline: Path, tmp_path: Path
) -> None:
    folders = {
        limit: new_workdir(
            tmp_path / f"limit_{limit}", {"concurrency.max_concurrent_requests": limit}
        )
        for limit in (1, 16)
    }

    # Two independent processes: run them side by side to save time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda f: run_cli(["run", "--count", "3"], cwd=f), folders.values())
        )

    for result in results:
        assert result.returncode == 0, result.stderr
    outputs = {limit: (folder / FINAL).read_bytes() for limit, folder in folders.items()}
    assert outputs[1] == outputs[16] == (baseline / FINAL).read_bytes()


def test_seed_flag_changes_the_puzzles(baseline: Path, tmp_path: Path) -> None:
    folder = new_workdir(tmp_path)

    result = run_cli(["run", "--count", "3", "--seed", "7"], cwd=folder)

    assert result.returncode == 0, result.stderr
    assert load(folder, SELECTED)["random_seed"] == 7
    assert load(folder, METADATA)["random_seed"] == 7
    assert load(folder, SELECTED)["themes"] != load(baseline, SELECTED)["themes"]
    assert (folder / FINAL).read_bytes() != (baseline / FINAL).read_bytes()
    assert_complete_puzzles(load(folder, FINAL), 3)


def test_workdir_flag_resolves_relative_paths_against_it(baseline: Path, tmp_path: Path) -> None:
    folder = new_workdir(tmp_path / "project", {"paths.outputs": "published/"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = run_cli(["run", "--count", "3", "--workdir", str(folder)], cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert list(elsewhere.iterdir()) == []
    written = folder / "published" / "final_puzzles.json"
    assert written.read_bytes() == (baseline / FINAL).read_bytes()
    assert (folder / "published" / "puzzle_metadata.json").is_file()
    assert (folder / SELECTED).is_file()
    assert not (folder / FINAL).exists()


def test_the_default_run_makes_80_complete_puzzles(tmp_path: Path) -> None:
    folder = new_workdir(tmp_path)

    result = run_cli(["run"], cwd=folder)

    assert result.returncode == 0, result.stderr
    puzzles = load(folder, FINAL)
    assert_complete_puzzles(puzzles, 80)
    themes = [theme for puzzle in puzzles.values() for theme in puzzle["themes"]]
    assert len(set(themes)) == 320
    assert load(folder, METADATA)["counts"]["puzzles_generated"] == 80
    assert len(read_table(folder / PUZZLE_TABLE)) == 80 * 16


def test_parquet_format_writes_parquet_tables_with_float32_vectors(
    baseline: Path, tmp_path: Path
) -> None:
    folder = new_workdir(tmp_path, {"output.embedding_table_format": "parquet"})

    result = run_cli(["run", "--count", "3"], cwd=folder)

    assert result.returncode == 0, result.stderr
    assert not (folder / PUZZLE_TABLE).exists() and not (folder / ALL_TABLE).exists()
    puzzle_table = parquet.read_table(folder / PUZZLE_TABLE.with_suffix(".parquet"))
    all_table = parquet.read_table(folder / ALL_TABLE.with_suffix(".parquet"))
    for table in (puzzle_table, all_table):
        assert table.column_names == TABLE_START + ["embedding"]
        embedding_type = table.schema.field("embedding").type
        assert embedding_type.value_type == arrow.float32()
        assert embedding_type.list_size == 50
    # The same rows as the CSV tables of the same batch.
    csv_rows = read_table(baseline / PUZZLE_TABLE)
    assert puzzle_table.column("word").to_pylist() == [row["word"] for row in csv_rows]
    assert puzzle_table.column("theme").to_pylist() == [row["theme"] for row in csv_rows]
    vectors = np.array(puzzle_table.column("embedding").to_pylist(), dtype=np.float32)
    csv_vectors = np.array(
        [[float(row[f"embedding_dim_{n}"]) for n in range(1, 51)] for row in csv_rows]
    )
    np.testing.assert_allclose(vectors, csv_vectors, atol=6e-7)
    assert all_table.num_rows == len(read_table(baseline / ALL_TABLE))
    assert (folder / FINAL).read_bytes() == (baseline / FINAL).read_bytes()


# --- theme sources and indexes --------------------------------------------------------


def test_an_unknown_theme_is_reported_and_replaced_by_a_spare(tmp_path: Path) -> None:
    themes = ["Birds", "Musical instruments", "Zzqxv Blorft", *COMMON_THEMES[1:10]]
    (tmp_path / "themes.txt").write_text("\n".join(themes) + "\n", encoding="utf-8")
    folder = new_workdir(
        tmp_path,
        {
            "themes.source": "themes.txt",
            "puzzle_generation.theme_selection_method": "sequential",
            # Themes in draw order: no look-ahead for a theme a decoy could bridge to.
            "quality.red_herrings": 0,
        },
    )

    result = run_cli(["run", "--count", "2"], cwd=folder)

    assert result.returncode == 0, result.stderr
    metadata = load(folder, METADATA)
    failure = metadata["failed_themes"]["Zzqxv Blorft"]
    assert failure["kind"] == "no_candidates"
    assert "vector index" in failure["reason"]
    assert metadata["failed_puzzles"] == {}
    assert metadata["counts"]["spare_themes_used"] >= 1
    puzzles = load(folder, FINAL)
    assert_complete_puzzles(puzzles, 2, load(folder, CANDIDATES)["candidates"])
    used = [theme for puzzle in puzzles.values() for theme in puzzle["themes"]]
    assert "Zzqxv Blorft" not in used
    assert "Musical instruments" in used
    assert themes[8] in used  # the first spare


def test_too_few_themes_to_replace_a_failed_one_exits_1_with_reasons(tmp_path: Path) -> None:
    themes = [*COMMON_THEMES[:7], "Zzqxv Blorft"]  # exactly the 8 two puzzles need
    (tmp_path / "themes.txt").write_text("\n".join(themes) + "\n", encoding="utf-8")
    folder = new_workdir(tmp_path, {"themes.source": "themes.txt"})

    result = run_cli(["run", "--count", "2"], cwd=folder)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    metadata = load(folder, METADATA)
    assert metadata["counts"]["puzzles_generated"] == 1
    assert list(metadata["failed_puzzles"]) == ["puzzle_2"]
    assert metadata["failed_puzzles"]["puzzle_2"]
    assert "Zzqxv Blorft" in metadata["failed_themes"]
    assert len(metadata["unused_themes"]) == 3
    assert_complete_puzzles(load(folder, FINAL), 1)


@pytest.mark.parametrize(("rate", "code"), [("0.5", 0), ("0.6", 1)])
def test_min_success_rate_sets_the_share_of_puzzles_that_exits_0(
    tmp_path: Path, rate: str, code: int
) -> None:
    themes = [*COMMON_THEMES[:7], "Zzqxv Blorft"]  # one of two puzzles can be made
    (tmp_path / "themes.txt").write_text("\n".join(themes) + "\n", encoding="utf-8")
    folder = new_workdir(tmp_path, {"themes.source": "themes.txt"})

    result = run_cli(["run", "--count", "2", "--min-success-rate", rate], cwd=folder)

    assert result.returncode == code, result.stderr
    assert_complete_puzzles(load(folder, FINAL), 1)
    assert ("below --min-success-rate" in result.stderr) == (code == 1)


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "most"])
def test_a_min_success_rate_outside_0_to_1_exits_2(workdir: Path, rate: str) -> None:
    result = run_cli(["run", "--min-success-rate", rate], cwd=workdir)

    assert result.returncode == 2
    assert "--min-success-rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_format_json_writes_one_json_object_per_line(workdir: Path) -> None:
    result = run_cli(["run", "--count", "1", "--log-format", "json"], cwd=workdir)

    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(entries) > 5
    assert all(set(entry) == {"time", "level", "logger", "message"} for entry in entries)
    assert any(entry["message"].startswith("Generated 1 of 1 puzzles") for entry in entries)


def test_log_format_json_reports_an_error_as_one_json_line(workdir: Path) -> None:
    result = run_cli(
        ["select-themes", "--log-format", "json", "--params", "missing.yaml"], cwd=workdir
    )

    assert result.returncode == 2
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [entry for entry in entries if entry["level"] == "ERROR"]
    assert len(errors) == 1 and "missing.yaml" in errors[0]["message"]


def test_resume_with_nothing_to_resume_runs_afresh_and_leaves_no_checkpoint(
    workdir: Path,
) -> None:
    result = run_cli(["run", "--count", "1", "--resume"], cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "no interrupted run to continue" in result.stderr
    assert load(workdir, FINAL)
    assert not (workdir / "data" / "cache" / "run_checkpoint.jsonl").exists()


def test_a_batch_with_no_puzzle_and_parquet_tables_exits_1_with_its_metadata(
    tmp_path: Path,
) -> None:
    themes = [*COMMON_THEMES[:3], "Zzqxv Blorft"]  # one puzzle's worth, one of them unknown
    (tmp_path / "themes.txt").write_text("\n".join(themes) + "\n", encoding="utf-8")
    folder = new_workdir(
        tmp_path, {"themes.source": "themes.txt", "output.embedding_table_format": "parquet"}
    )

    result = run_cli(["run", "--count", "1"], cwd=folder)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert load(folder, FINAL) == {}
    assert list(load(folder, METADATA)["failed_puzzles"]) == ["puzzle_1"]
    assert parquet.read_table(folder / PUZZLE_TABLE.with_suffix(".parquet")).num_rows == 0


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory: pytest.TempPathFactory, glove: VocabularyIndex) -> Path:
    """root/themes_index: an older-format index of the 10,000 most frequent GloVe words."""
    root = tmp_path_factory.mktemp("reference")
    write_legacy_index(root / "themes_index", list(glove.words[:10_000]), glove.vectors[:10_000])
    return root


def test_an_older_format_index_runs_end_to_end(reference_root: Path, tmp_path: Path) -> None:
    index = reference_root / "themes_index"
    (tmp_path / "themes.txt").write_text("\n".join(COMMON_THEMES) + "\n", encoding="utf-8")
    folder = new_workdir(
        tmp_path, {"themes.source": "themes.txt", "vector_search.data_source": str(index)}
    )

    result = run_cli(["run", "--count", "2"], cwd=folder)

    assert result.returncode == 0, result.stderr
    candidates = load(folder, CANDIDATES)
    assert candidates["metadata"]["index_metadata"] == {"count": 10_000, "dimension": 50}
    assert_complete_puzzles(load(folder, FINAL), 2, candidates["candidates"])
    vocabulary = set(json.loads((index / "themes_vocabulary.json").read_text()))
    assert all(
        word in vocabulary for puzzle in load(folder, FINAL).values() for word in puzzle["words"]
    )
    provider = load(folder, METADATA)["provider"]
    assert provider["name"] == "glove"
    assert provider["dimension"] == 50
    assert provider["model"] == str(index)


def test_the_older_pipelines_setup_runs_unchanged(reference_root: Path) -> None:
    workdir = reference_root / "pipeline" / "work"
    categories = reference_root / "pipeline" / "data" / "categories"
    workdir.mkdir(parents=True)
    categories.mkdir(parents=True)
    shutil.copy(REFERENCE / "params.yaml", workdir / "params.yaml")
    shutil.copy(REFERENCE / "wiki_categories_filtered", categories / "wiki_categories_filtered")
    # params.yaml says ../../themes_index: two levels above the workdir, where the fixture put it.
    assert (workdir / "../../themes_index").resolve() == (reference_root / "themes_index")

    result = run_cli(["run", "--count", "3"], cwd=workdir)

    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    obsolete = [line for line in warnings if "no longer apply" in line]
    assert len(obsolete) == 1
    for key in ("enabled", "worker_count", "task_queue_size", "cache_sync_interval"):
        assert f"multiprocessing.{key}" in obsolete[0]
    for relative in (SELECTED, CANDIDATES, FINAL, METADATA, ANALYSIS, ALL_TABLE, PUZZLE_TABLE):
        assert (workdir / relative).is_file(), relative
    selected = load(workdir, SELECTED)
    source = (categories / "wiki_categories_filtered").read_text(encoding="utf-8").splitlines()
    assert set(selected["themes"]) <= {line.strip() for line in source}
    metadata = load(workdir, METADATA)
    puzzles = load(workdir, FINAL)
    assert_complete_puzzles(puzzles, len(puzzles), load(workdir, CANDIDATES)["candidates"])
    assert metadata["counts"]["puzzles_generated"] == len(puzzles)
    if result.returncode == 1:
        assert len(puzzles) < 3
        missing = [f"puzzle_{number}" for number in range(len(puzzles) + 1, 4)]
        assert sorted(metadata["failed_puzzles"]) == missing
        assert all(metadata["failed_puzzles"].values())
        assert metadata["failed_themes"]
    else:
        assert len(puzzles) == 3


# --- neighbour candidates: one word per variant key is embedded -------------------------


@pytest.fixture(scope="module")
def neighbour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = new_workdir(tmp_path_factory.mktemp("neighbours"), {"candidates.source": "neighbours"})
    result = run_cli(["run", "--count", "2"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def embedded_candidates(folder: Path) -> dict[str, list[str]]:
    """Theme -> the candidate words the run embedded, from the table of every embedded text."""
    embedded: dict[str, list[str]] = {}
    for row in read_table(folder / ALL_TABLE):
        if row["word_type"] == "candidate":
            embedded.setdefault(row["theme"], []).append(row["word"])
    return embedded


def assert_one_word_per_variant_key(embedded: dict[str, list[str]]) -> None:
    for theme, words in embedded.items():
        keys = [variant_key(word) for word in words]
        assert len(keys) == len(set(keys)), (theme, words)


def test_a_neighbour_run_embeds_one_word_per_variant_key_of_each_theme(
    neighbour_run: Path,
) -> None:
    candidates = load(neighbour_run, CANDIDATES)["candidates"]
    embedded = embedded_candidates(neighbour_run)

    assert_one_word_per_variant_key(embedded)
    assert {theme: len(words) for theme, words in embedded.items()} == {
        theme: len(candidates[theme]["words"]) for theme in embedded
    }


def older_forms(word: str) -> list[str]:
    """The word, its capitalised form, and its plural when a naive one is a variant of it."""
    forms = [word, word.title()]
    if variant_key(word + "s") == variant_key(word):
        forms.append(word + "s")
    return forms


def test_enhance_drops_the_variants_of_an_older_candidates_file_before_embedding(
    neighbour_run: Path, tmp_path: Path
) -> None:
    folder = new_workdir(tmp_path, {"candidates.source": "neighbours"})
    selected = load(neighbour_run, SELECTED)
    for field in ("selection_method", "random_seed", "filters", "source", "available_count"):
        del selected[field]
    clean = load(neighbour_run, CANDIDATES)["candidates"]
    # The older pipeline's lists: Dance, dance, dances side by side, closest first.
    older = {
        theme: {"words": [form for word in entry["words"] for form in older_forms(word)]}
        for theme, entry in clean.items()
    }
    for relative, document in ((SELECTED, selected), (CANDIDATES, {"candidates": older})):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(json.dumps(document), encoding="utf-8")

    result = run_cli(["enhance", "--count", "2", "--provider", "glove"], cwd=folder)

    assert result.returncode == 0, result.stderr
    padded = sum(len(entry["words"]) for entry in older.values())
    kept = sum(len(entry["words"]) for entry in clean.values())
    assert f"Dropped {padded - kept} candidates" in result.stderr
    embedded = embedded_candidates(folder)
    assert_one_word_per_variant_key(embedded)
    assert embedded == embedded_candidates(neighbour_run)
    assert (folder / FINAL).read_bytes() == (neighbour_run / FINAL).read_bytes()


# --- providers and exit codes ----------------------------------------------------------


@pytest.fixture
def stage_inputs(baseline: Path, tmp_path: Path) -> Path:
    """A work folder holding the baseline's stage 1 and 2 files, ready for `enhance`."""
    folder = new_workdir(tmp_path)
    for relative in (SELECTED, CANDIDATES):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(baseline / relative, folder / relative)
    return folder


def test_gemini_without_its_key_exits_2_with_one_clear_line(stage_inputs: Path) -> None:
    result = run_cli(["enhance", "--count", "3", "--provider", "gemini"], cwd=stage_inputs)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "GEMINI_API_KEY")
    assert not (stage_inputs / FINAL).exists()


@pytest.fixture
def gemini_server() -> Iterator[GeminiTestServer]:
    with GeminiTestServer(ServerConfig(valid_keys=frozenset({GEMINI_KEY}))) as server:
        yield server


def gemini_env(server: GeminiTestServer) -> dict[str, str]:
    return {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": server.base_url}


def test_gemini_with_its_key_embeds_through_the_gemini_api(
    stage_inputs: Path, gemini_server: GeminiTestServer
) -> None:
    new_workdir(stage_inputs, {"gemini.embedding_dimension": 64})

    result = run_cli(
        ["enhance", "--count", "3", "--provider", "gemini"],
        cwd=stage_inputs,
        env=gemini_env(gemini_server),
    )

    assert result.returncode == 0, result.stderr
    candidates = load(stage_inputs, CANDIDATES)["candidates"]
    assert_complete_puzzles(load(stage_inputs, FINAL), 3, candidates)
    metadata = load(stage_inputs, METADATA)
    provider = metadata["provider"]
    assert (provider["name"], provider["model"], provider["dimension"]) == (
        "gemini",
        "gemini-embedding-001",
        64,
    )
    assert "requested" in provider["chosen_because"]
    assert metadata["run_statistics"]["requests"] == gemini_server.request_count > 0
    assert {arrival.api_key for arrival in gemini_server.arrivals()} == {GEMINI_KEY}
    assert GEMINI_KEY not in result.stderr


def test_auto_with_the_gemini_key_uses_gemini_and_says_so(
    stage_inputs: Path, gemini_server: GeminiTestServer
) -> None:
    new_workdir(stage_inputs, {"gemini.embedding_dimension": 64})

    result = run_cli(
        ["enhance", "--count", "3", "--provider", "auto"],
        cwd=stage_inputs,
        env=gemini_env(gemini_server),
    )

    assert result.returncode == 0, result.stderr
    assert "Embedding provider: gemini (GEMINI_API_KEY is set" in result.stderr
    assert GEMINI_KEY not in result.stderr
    provider = load(stage_inputs, METADATA)["provider"]
    assert provider["name"] == "gemini"
    assert "GEMINI_API_KEY is set" in provider["chosen_because"]
    assert gemini_server.request_count > 0
    assert_complete_puzzles(load(stage_inputs, FINAL), 3)


def test_provider_glove_with_the_gemini_key_set_still_uses_glove(
    stage_inputs: Path, baseline: Path, gemini_server: GeminiTestServer
) -> None:
    result = run_cli(
        ["enhance", "--count", "3", "--provider", "glove"],
        cwd=stage_inputs,
        env=gemini_env(gemini_server),
    )

    assert result.returncode == 0, result.stderr
    assert "Embedding provider: glove (requested)" in result.stderr
    assert GEMINI_KEY not in result.stderr
    assert load(stage_inputs, METADATA)["provider"]["name"] == "glove"
    assert gemini_server.request_count == 0
    assert (stage_inputs / FINAL).read_bytes() == (baseline / FINAL).read_bytes()


def test_gemini_enhance_never_loads_the_vector_index_so_a_missing_one_is_no_obstacle(
    stage_inputs: Path, tmp_path: Path, gemini_server: GeminiTestServer
) -> None:
    missing = tmp_path / "no_such_themes_index"
    new_workdir(
        stage_inputs,
        {"gemini.embedding_dimension": 64, "vector_search.data_source": str(missing)},
    )

    result = run_cli(
        ["enhance", "--count", "3", "--provider", "gemini"],
        cwd=stage_inputs,
        env=gemini_env(gemini_server),
    )

    assert result.returncode == 0, result.stderr
    assert "Loaded vector index" not in result.stderr
    assert_complete_puzzles(load(stage_inputs, FINAL), 3)


def test_a_gemini_run_of_member_themes_never_loads_the_vector_index(
    tmp_path: Path, gemini_server: GeminiTestServer
) -> None:
    folder = new_workdir(
        tmp_path / "work",
        {
            "gemini.embedding_dimension": 64,
            "vector_search.data_source": str(tmp_path / "no_such_themes_index"),
        },
    )

    result = run_cli(
        ["run", "--count", "2", "--provider", "gemini"], cwd=folder, env=gemini_env(gemini_server)
    )

    assert result.returncode == 0, result.stderr
    assert "Loaded vector index" not in result.stderr
    assert set(load(folder, CANDIDATES)["metadata"]["theme_sources"].values()) == {"members"}


def test_a_gemini_run_lets_the_index_go_once_its_neighbour_search_is_done(
    tmp_path: Path, gemini_server: GeminiTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, to see the index object itself: nothing but the pipeline may keep it
    # past the neighbour search (about 120 MB of an older batch's peak).
    folder = new_workdir(
        tmp_path / "work", {"gemini.embedding_dimension": 64, "candidates.source": "neighbours"}
    )
    for name, value in gemini_env(gemini_server).items():
        monkeypatch.setenv(name, value)
    loaded = load_params(folder / "params.yaml", Overrides(count=2))
    pipeline = Pipeline(loaded, Workspace(folder, loaded.params), "gemini")
    selection = run_select_themes(pipeline)
    candidates = run_select_candidates(pipeline, selection)
    index = weakref.ref(pipeline.index())

    report = run_enhance(pipeline, selection, candidates)
    gc.collect()

    assert report.puzzles_generated == 2
    assert set(load(folder, CANDIDATES)["metadata"]["theme_sources"].values()) == {"neighbours"}
    assert index() is None


def test_glove_enhance_loads_the_vector_index_it_embeds_from(
    stage_inputs: Path, tmp_path: Path
) -> None:
    result = run_cli(["enhance", "--count", "3", "--provider", "glove"], cwd=stage_inputs)
    assert result.returncode == 0, result.stderr
    assert "Loaded vector index glove" in result.stderr

    missing = tmp_path / "no_such_themes_index"
    new_workdir(stage_inputs, {"vector_search.data_source": str(missing)})
    result = run_cli(["enhance", "--count", "3", "--provider", "glove"], cwd=stage_inputs)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, str(missing), "vector index folder not found")


@pytest.mark.parametrize(
    ("stage", "missing"),
    [("enhance", "selected_themes.json"), ("select-candidates", "selected_themes.json")],
)
def test_a_stage_run_without_its_input_file_exits_2_naming_it(
    workdir: Path, stage: str, missing: str
) -> None:
    result = run_cli([stage, "--count", "3"], cwd=workdir)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, missing)


def test_enhance_without_the_candidate_file_exits_2_naming_it(stage_inputs: Path) -> None:
    (stage_inputs / CANDIDATES).unlink()

    result = run_cli(["enhance", "--count", "3"], cwd=stage_inputs)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "candidate_words.json")


def test_a_count_needing_more_themes_than_exist_exits_2(workdir: Path) -> None:
    result = run_cli(["run", "--count", "1000"], cwd=workdir)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "4000")
    assert not (workdir / FINAL).exists()


@pytest.mark.parametrize("count", ["0", "many"])
def test_a_count_that_is_not_a_positive_number_exits_2(workdir: Path, count: str) -> None:
    result = run_cli(["run", "--count", count], cwd=workdir)

    assert result.returncode == 2
    assert "--count" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["enhance", "--help"]])
def test_help_lists_the_exit_codes(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(args, cwd=tmp_path)

    assert result.returncode == 0
    assert "exit codes" in result.stdout
    for code in ("0", "1", "2", "3", "70", "74", "75", "130", "143"):
        assert any(line.split()[:1] == [code] for line in result.stdout.splitlines()), code


def test_jobs_cancel_is_refused_while_a_run_works_and_jobs_lists_none_without_a_run(
    tmp_path: Path,
) -> None:
    # A run waiting on its batch jobs would resubmit, and pay again for, what a cancel
    # cancels under it: `jobs --cancel` takes the run's lock (exit 75 while it is held).
    env = {"GEMINI_API_KEY": "k"}
    with exclusive_run(tmp_path / "data" / "cache" / "run.lock"):
        busy = run_cli(["jobs", "--cancel"], cwd=tmp_path, env=env)
        listed = run_cli(["jobs"], cwd=tmp_path, env=env)  # reading needs no lock
    assert busy.returncode == 75, busy.stderr
    assert listed.returncode == 0, listed.stderr
    assert "No batch jobs" in listed.stdout
    free = run_cli(["jobs", "--cancel"], cwd=tmp_path, env=env)
    assert free.returncode == 0 and "No batch jobs" in free.stdout
