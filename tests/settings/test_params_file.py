"""asyncpipe.settings.params_file (and the sections it validates into): params.yaml is validated
once, older files still load, errors are one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from asyncpipe.embeddings.cache import ENTRY_OVERHEAD_BYTES, LruVectorCache
from asyncpipe.errors import AsyncpipeError, ConfigError
from asyncpipe.settings.params_file import Overrides, load_params
from tests.support import REFERENCE, REPO, run_cli

OBSOLETE_MULTIPROCESSING = (
    "enabled",
    "worker_count",
    "task_queue_size",
    "result_queue_size",
    "cache_sync_interval",
)


def _write(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _reference_copy(tmp_path: Path) -> Path:
    """A writable private copy of the older params.yaml (the original is read-only)."""
    copy = tmp_path / "params.yaml"
    shutil.copyfile(REFERENCE / "params.yaml", copy)
    return copy


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


# --- the shipped params.yaml ------------------------------------------------------------


def test_repository_params_file_loads_without_warnings_or_notes() -> None:
    loaded = load_params(REPO / "params.yaml")
    assert loaded.warnings == ()
    assert loaded.notes == ()
    assert loaded.source == str(REPO / "params.yaml")


def test_repository_params_file_equals_the_built_in_defaults() -> None:
    from_file = load_params(REPO / "params.yaml").params.model_dump()
    defaults = load_params(None).params.model_dump()
    # The default worker count follows the machine's CPU count; the file pins one.
    from_file["concurrency"].pop("scoring_workers")
    defaults["concurrency"].pop("scoring_workers")
    assert from_file == defaults


def test_built_in_defaults_name_their_source_and_have_no_warnings() -> None:
    loaded = load_params(None)
    assert loaded.source == "built-in defaults"
    assert loaded.warnings == ()
    assert loaded.params.puzzle_generation.total_puzzle_count == 80
    assert loaded.params.concurrency.batch_size == 100


def test_an_empty_params_file_means_all_defaults(tmp_path: Path) -> None:
    loaded = load_params(_write(tmp_path, "# nothing set\n"))
    assert loaded.params == load_params(None).params


def test_a_section_whose_keys_are_all_commented_out_takes_the_defaults(tmp_path: Path) -> None:
    # "Every key is optional": a section left with no keys is None in YAML.
    path = _write(tmp_path, "gemini:\n  # model_id: other\nthemes:\n")
    loaded = load_params(path)
    assert loaded.params.gemini == load_params(None).params.gemini
    assert loaded.params.themes == load_params(None).params.themes


def test_params_are_frozen() -> None:
    params = load_params(None).params
    with pytest.raises(ValidationError):
        params.puzzle_generation.total_puzzle_count = 3  # type: ignore[misc]


# --- the older pipeline's params.yaml ---------------------------------------------------


def test_reference_params_file_loads_unchanged(tmp_path: Path) -> None:
    copy = _reference_copy(tmp_path)
    before = copy.read_bytes()
    loaded = load_params(copy)
    assert copy.read_bytes() == before
    params = loaded.params
    assert params.themes.source == "../data/categories/wiki_categories_filtered"
    assert params.vector_search.data_source == "../../themes_index"
    assert params.gemini.min_request_interval == pytest.approx(0.1)
    assert params.puzzle_generation.total_puzzle_count == 80


def test_reference_params_file_gives_one_warning_naming_every_obsolete_setting(
    tmp_path: Path,
) -> None:
    copy = _reference_copy(tmp_path)
    loaded = load_params(copy)
    assert len(loaded.warnings) == 1, loaded.warnings
    warning = loaded.warnings[0]
    assert str(copy) in warning
    for key in OBSOLETE_MULTIPROCESSING:
        assert f"multiprocessing.{key}" in warning
    # The one setting that still means something is carried over, not called obsolete.
    assert "max_concurrent_requests" not in warning


def test_legacy_max_concurrent_requests_becomes_the_concurrency_limit(tmp_path: Path) -> None:
    loaded = load_params(_reference_copy(tmp_path))
    assert loaded.params.concurrency.max_concurrent_requests == 6
    assert any(
        "multiprocessing.max_concurrent_requests (6)" in note
        and "concurrency.max_concurrent_requests" in note
        for note in loaded.notes
    ), loaded.notes


def test_legacy_limit_is_carried_over_when_concurrency_sets_other_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "concurrency:\n  batch_size: 50\nmultiprocessing:\n  max_concurrent_requests: 6\n",
    )
    params = load_params(path).params
    assert params.concurrency.max_concurrent_requests == 6
    assert params.concurrency.batch_size == 50


def test_concurrency_limit_wins_over_the_legacy_one_and_a_note_says_so(tmp_path: Path) -> None:
    copy = _reference_copy(tmp_path)
    with open(copy, "a", encoding="utf-8") as handle:
        handle.write("\nconcurrency:\n  max_concurrent_requests: 3\n")
    loaded = load_params(copy)
    assert loaded.params.concurrency.max_concurrent_requests == 3
    assert any(
        "concurrency.max_concurrent_requests (3)" in note
        and "multiprocessing.max_concurrent_requests (6)" in note
        for note in loaded.notes
    ), loaded.notes
    assert len(loaded.warnings) == 1


# --- errors: one line naming the file, the key and the problem --------------------------


def test_wrong_type_names_the_dotted_key_and_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path, 'puzzle_generation:\n  total_puzzle_count: "many"\n')
    message = _config_error(path)
    assert "puzzle_generation.total_puzzle_count" in message
    assert "integer" in message
    assert "'many'" in message


def test_negative_count_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: -5\n")
    message = _config_error(path)
    assert "puzzle_generation.total_puzzle_count" in message
    assert "greater than 0" in message
    assert "-5" in message


def test_zero_count_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: 0\n")
    message = _config_error(path)
    assert "puzzle_generation.total_puzzle_count" in message
    assert "greater than 0" in message


def test_fewer_candidates_than_words_per_theme_is_an_error_naming_the_key(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path, "puzzle_generation:\n  words_per_theme: 4\n  candidate_words_per_theme: 3\n"
    )
    message = _config_error(path)
    assert "puzzle_generation.candidate_words_per_theme" in message
    assert "words_per_theme" in message
    assert "(got 3)" in message and "(4)" in message


def test_batch_size_above_the_api_limit_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "concurrency:\n  batch_size: 101\n")
    message = _config_error(path)
    assert "concurrency.batch_size" in message
    assert "100" in message
    assert "101" in message


def test_a_file_that_is_not_yaml_is_an_error_with_its_position(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: [80\n")
    message = _config_error(path)
    assert "not valid YAML" in message
    assert "line" in message


def test_a_yaml_list_instead_of_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "- puzzle_generation\n- themes\n")
    message = _config_error(path)
    assert "mapping" in message
    assert "list" in message


def test_a_section_of_the_wrong_type_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "concurrency: 8\n")
    message = _config_error(path)
    assert "concurrency" in message
    assert "(got 8)" in message


def test_a_missing_params_file_is_an_error(tmp_path: Path) -> None:
    message = _config_error(tmp_path / "absent.yaml")
    assert "not found" in message


def test_a_directory_as_params_file_is_an_error(tmp_path: Path) -> None:
    message = _config_error(tmp_path)
    assert "directory" in message


def test_a_params_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes("themes:\n  source: caf\xe9\n".encode("latin-1"))
    message = _config_error(path)
    assert "UTF-8" in message


def test_config_error_is_an_asyncpipe_error() -> None:
    assert issubclass(ConfigError, AsyncpipeError)


# --- unknown keys and overrides ---------------------------------------------------------


def test_unknown_keys_at_any_depth_are_one_warning_naming_them(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "colour_scheme: dark\n"
        "puzzle_generation:\n  colour: blue\n  total_puzzle_count: 5\n"
        "multiprocessing:\n  turbo: true\n",
    )
    loaded = load_params(path)
    assert loaded.params.puzzle_generation.total_puzzle_count == 5
    unknown = [warning for warning in loaded.warnings if "unknown" in warning]
    assert len(unknown) == 1, loaded.warnings
    for key in ("colour_scheme", "puzzle_generation.colour", "multiprocessing.turbo"):
        assert key in unknown[0]
    assert str(path) in unknown[0]


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: 5\n  random_seed: 1\n")
    params = load_params(path, Overrides(count=7, seed=9)).params
    assert params.puzzle_generation.total_puzzle_count == 7
    assert params.puzzle_generation.random_seed == 9


def test_overrides_apply_to_the_built_in_defaults() -> None:
    params = load_params(None, Overrides(count=3, seed=-4)).params
    assert params.puzzle_generation.total_puzzle_count == 3
    assert params.puzzle_generation.random_seed == -4


def test_no_overrides_keep_the_file_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: 5\n  random_seed: 1\n")
    params = load_params(path, Overrides()).params
    assert params.puzzle_generation.total_puzzle_count == 5
    assert params.puzzle_generation.random_seed == 1


def test_the_set_name_override_wins_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "output:\n  set_name: from-file\n")
    assert load_params(path).params.output.set_name == "from-file"
    assert load_params(path, Overrides(set_name="daily_7")).params.output.set_name == "daily_7"
    assert load_params(None).params.output.set_name == "asyncpipe"


@pytest.mark.parametrize("name", ["two words", "", "x" * 51, "café", "a/b"])
def test_a_set_name_the_app_refuses_is_one_line_naming_the_key(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, f"output:\n  set_name: '{name}'\n")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 2: output.set_name: ") and "\n" not in message


def test_themes_needed_is_puzzles_times_themes_per_puzzle(tmp_path: Path) -> None:
    path = _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: 5\n  themes_per_puzzle: 3\n")
    assert load_params(path).params.puzzle_generation.themes_needed == 15


# --- the command line -------------------------------------------------------------------


def _assert_one_error_line(stderr: str, *expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    error_lines = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, stderr
    for text in expected:
        assert text in error_lines[0], stderr


def test_cli_wrong_type_exits_2_with_one_error_line(tmp_path: Path) -> None:
    _write(tmp_path, 'puzzle_generation:\n  total_puzzle_count: "many"\n', "bad.yaml")
    result = run_cli(["select-themes", "--params", "bad.yaml"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_error_line(result.stderr, "bad.yaml", "puzzle_generation.total_puzzle_count")


def test_cli_negative_count_in_the_file_exits_2_with_one_error_line(tmp_path: Path) -> None:
    _write(tmp_path, "puzzle_generation:\n  total_puzzle_count: -3\n")
    result = run_cli(["select-themes"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_error_line(result.stderr, "params.yaml", "puzzle_generation.total_puzzle_count")
    assert not (tmp_path / "data").exists()


def test_cli_negative_count_flag_exits_2_with_one_usage_error_line(tmp_path: Path) -> None:
    result = run_cli(["select-themes", "--count", "-1"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # argparse prints the usage first; the usage lists the log levels, ERROR among them.
    error_lines = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(error_lines) == 1, result.stderr
    assert "--count" in error_lines[0]
    assert "-1" in error_lines[0]


def test_cli_missing_params_file_exits_2_with_one_error_line(tmp_path: Path) -> None:
    result = run_cli(["select-themes", "--params", "absent.yaml"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    _assert_one_error_line(result.stderr, "absent.yaml", "not found")


def test_an_older_cache_size_in_vectors_still_bounds_the_cache(tmp_path: Path) -> None:
    path = _write(tmp_path, "concurrency:\n  embedding_cache_size: 1000\n")

    loaded = load_params(path)

    assert loaded.params.concurrency.cache_bytes(3072) == 1000 * 3072 * 4
    assert loaded.params.concurrency.cache_bytes(768) == 1000 * 768 * 4
    assert any("embedding_cache_size (1000 vectors)" in note for note in loaded.notes)
    # With the overhead each entry counts, the bound still holds 1000 vectors, no more.
    cache = LruVectorCache(loaded.params.concurrency.cache_bytes(8, ENTRY_OVERHEAD_BYTES))
    for number in range(1001):
        cache.put(f"text {number}", np.ones(8, dtype=np.float32))
    assert cache.statistics().size == 1000


def test_the_cache_bound_in_mb_wins_over_the_older_size(tmp_path: Path) -> None:
    path = _write(tmp_path, "concurrency:\n  embedding_cache_size: 1000\n  embedding_cache_mb: 2\n")

    loaded = load_params(path)

    assert loaded.params.concurrency.cache_bytes(3072) == 2 * 2**20
    assert not any("embedding_cache_size" in note for note in loaded.notes)


def test_the_default_cache_bound_is_in_mb() -> None:
    concurrency = load_params(None).params.concurrency

    assert concurrency.cache_bytes(3072) == concurrency.cache_bytes(50) == 64 * 2**20
