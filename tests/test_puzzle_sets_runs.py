"""puzzle_sets.json end to end: real `python -m asyncpipe` runs write a file the app's
rules accept, the same bytes every run, with times only when given; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from tests.support import FINAL, PUZZLE_SETS, run_cli
from tests.test_cli import assert_one_clear_error, new_workdir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folders = []
    for name in ("first", "second"):
        folder = new_workdir(tmp_path_factory.mktemp(name))
        result = run_cli(["run", "--count", "3"], cwd=folder, env={"SOURCE_DATE_EPOCH": ""})
        assert result.returncode == 0, result.stderr
        folders.append(folder)
    return folders[0], folders[1]


def _load(folder: Path, relative: Path) -> Any:
    return json.loads((folder / relative).read_text(encoding="utf-8"))


def test_a_run_writes_puzzle_sets_that_the_apps_rules_accept(two_runs: tuple[Path, Path]) -> None:
    document = _load(two_runs[0], PUZZLE_SETS)

    assert validate_puzzle_sets(document) == []
    assert list(document["puzzleSets"]) == ["asyncpipe"]
    assert document["setIndex"]["asyncpipe"]["puzzleIds"] == [f"asyncpipe_{n}" for n in (1, 2, 3)]
    result = run_cli(["validate-sets", str(two_runs[0] / PUZZLE_SETS)], cwd=two_runs[0])
    assert result.returncode == 0, result.stderr


def test_the_file_says_what_final_puzzles_says_in_the_apps_words(
    two_runs: tuple[Path, Path],
) -> None:
    final = _load(two_runs[0], FINAL)
    entries = _load(two_runs[0], PUZZLE_SETS)["puzzleSets"]["asyncpipe"]["4x4"]

    for number, (name, puzzle) in enumerate(final.items(), start=1):
        entry = entries[f"asyncpipe_{number}"]
        assert name == f"puzzle_{number}"
        categories = entry["categories"]
        assert [category["themeWord"] for category in categories] == puzzle["themes"]
        assert [category["difficulty"] for category in categories] == puzzle["group_levels"]
        assert [word for category in categories for word in category["words"]] == puzzle["words"]
        assert [category["similarity"] for category in categories] == puzzle["quality"]["theme_fit"]
        assert entry["difficulty"] == puzzle["difficulty_level"]
        assert sorted(entry["words"]) == sorted(puzzle["words"])
        assert entry["words"] != puzzle["words"]  # shuffled
        assert "createdAt" not in entry


def test_two_runs_write_the_same_bytes_and_no_time(two_runs: tuple[Path, Path]) -> None:
    first, second = ((folder / PUZZLE_SETS).read_bytes() for folder in two_runs)
    assert first == second
    assert b"createdAt" not in first and b"lastUpdated" not in first


def test_source_date_epoch_and_the_set_name_flag_reach_the_file(tmp_path: Path) -> None:
    folder = new_workdir(tmp_path)
    result = run_cli(
        ["run", "--count", "3", "--set-name", "daily_7"],
        cwd=folder,
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert result.returncode == 0, result.stderr

    document = _load(folder, PUZZLE_SETS)
    assert validate_puzzle_sets(document) == []
    entries = document["puzzleSets"]["daily_7"]["4x4"]
    assert list(entries) == ["daily_7_1", "daily_7_2", "daily_7_3"]
    assert {entry["createdAt"] for entry in entries.values()} == {1_700_000_000_000}
    assert document["setIndex"]["daily_7"]["lastUpdated"] == 1_700_000_000_000


@pytest.mark.parametrize(
    ("arguments", "environment", "named"),
    [
        (["--set-name", "daily 7"], {}, "--set-name 'daily 7'"),
        (["--set-name", "x" * 51], {}, "--set-name 'xxxx"),
        (["--created-at", "last tuesday"], {}, "--created-at 'last tuesday'"),
        ([], {"SOURCE_DATE_EPOCH": "soon"}, "SOURCE_DATE_EPOCH='soon'"),
    ],
)
def test_a_bad_set_name_or_time_stops_the_run_with_one_line(
    tmp_path: Path, arguments: list[str], environment: dict[str, str], named: str
) -> None:
    folder = new_workdir(tmp_path)
    result = run_cli(["run", "--count", "3", *arguments], cwd=folder, env=environment)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, named)
    assert not (folder / PUZZLE_SETS).exists()


def test_a_bad_set_name_in_params_yaml_names_the_setting(tmp_path: Path) -> None:
    folder = new_workdir(tmp_path, {"output.set_name": "my set"})
    result = run_cli(["run", "--count", "3"], cwd=folder)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, "output.set_name", "'my set'")


def test_validate_sets_names_the_broken_rule_and_exits_2(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    document = _load(two_runs[0], PUZZLE_SETS)
    entry = document["puzzleSets"]["asyncpipe"]["4x4"]["asyncpipe_2"]
    entry["categories"][0]["difficulty"] = entry["categories"][1]["difficulty"]
    broken = tmp_path / "puzzle_sets.json"
    broken.write_text(json.dumps(document), encoding="utf-8")

    result = run_cli(["validate-sets", str(broken)], cwd=tmp_path)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, str(broken), "puzzle asyncpipe_2", "1..4 once")


def test_validate_sets_on_a_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "puzzle_sets.json"
    broken.write_text('{"puzzleSets": {', encoding="utf-8")

    result = run_cli(["validate-sets", str(broken)], cwd=tmp_path)

    assert result.returncode == 2
    assert_one_clear_error(result.stderr, str(broken), "not valid JSON")
