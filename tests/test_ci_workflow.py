"""The CI batch job (.github/workflows/batch.yml) agrees with the code and the Makefile.

The workflow cannot run here (no network, no secret), so these tests check what
would silently break it: a cache path that is not where the store is written, a
make target that does not exist, a flag the CLI does not know, the key leaking
into steps that do not need it, a save or upload skipped after a failed batch.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from asyncpipe import cli
from asyncpipe.embeddings.store import STORE_FILE
from asyncpipe.settings.params_file import load_params
from asyncpipe.settings.sections import Params
from tests.support import REPO

WORKFLOW = REPO / ".github" / "workflows" / "batch.yml"
MAKEFILE = REPO / "Makefile"
SECRET = "secrets.GEMINI_API_KEY"


def _load_workflow() -> dict[Any, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


WORKFLOW_DATA = _load_workflow()


def _job() -> dict[str, Any]:
    (job,) = WORKFLOW_DATA["jobs"].values()
    return dict(job)


def _steps() -> list[dict[str, Any]]:
    return list(_job()["steps"])


def _steps_using(action: str) -> list[dict[str, Any]]:
    return [step for step in _steps() if str(step.get("uses", "")).split("@")[0] == action]


def _one_step_using(action: str) -> dict[str, Any]:
    (step,) = _steps_using(action)
    return step


def _commands(script: str) -> list[list[str]]:
    """The shell commands of a `run:` script, one token list each (continuations joined)."""
    joined = script.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            for part in re.split(r"&&|\|\||;", line):
                if part.strip():
                    commands.append(shlex.split(part))
    return commands


def _make_calls() -> list[list[str]]:
    return [command for step in _steps() if "run" in step for command in _commands(step["run"])]


def _generating_step() -> dict[str, Any]:
    (step,) = [step for step in _steps() if "make batch" in step.get("run", "")]
    return step


def _makefile_targets() -> tuple[set[str], set[str]]:
    """(targets, .PHONY targets) of the Makefile."""
    targets: set[str] = set()
    phony: set[str] = set()
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([^\s#:=][^:=]*?)\s*:(?!=)(.*)$", line)
        if not match:
            continue
        names, prerequisites = match.group(1).split(), match.group(2).split()
        if names == [".PHONY"]:
            phony.update(prerequisites)
        else:
            targets.update(names)
    return targets, phony


def _recipe(target: str) -> str:
    """The recipe lines (tab-indented) under `target:` in the Makefile."""
    lines = MAKEFILE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return "\n".join(recipe)


def _repository_params() -> Params:
    """The params a run in the repository uses: params.yaml in the working directory."""
    return load_params(REPO / "params.yaml").params


def _cache_paths(step: dict[str, Any]) -> list[PurePosixPath]:
    return [PurePosixPath(line.strip()) for line in step["with"]["path"].splitlines() if line]


def _cache_step(kind: str, name: str) -> dict[str, Any]:
    """The one actions/cache/restore or /save step (`kind`) that caches a file called `name`."""
    (step,) = [
        step
        for step in _steps_using(f"actions/cache/{kind}")
        if any(path.name == name for path in _cache_paths(step))
    ]
    return step


def test_triggers_are_a_daily_schedule_and_a_manual_run_with_optional_count_and_seed() -> None:
    triggers = WORKFLOW_DATA["on"]
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    (schedule,) = triggers["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("*", "*", "*")
    assert minute.isdigit() and hour.isdigit()
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"count", "seed"}
    assert not any(field.get("required", False) for field in inputs.values())


def test_the_key_comes_from_the_secret_and_only_the_generating_step_sees_it() -> None:
    generating = _generating_step()
    # The variable the code reads is named in params.yaml (gemini.api_key_env).
    assert _repository_params().gemini.api_key_env == "GEMINI_API_KEY"
    assert generating["env"]["GEMINI_API_KEY"] == "${{ " + SECRET + " }}"
    assert WORKFLOW.read_text(encoding="utf-8").count(SECRET) == 1
    assert "env" not in _job() or "GEMINI_API_KEY" not in _job()["env"]
    assert "GEMINI_API_KEY" not in WORKFLOW_DATA.get("env", {})


def test_every_run_step_is_a_make_call_and_nothing_else() -> None:
    calls = _make_calls()
    assert calls, "the workflow runs no command at all"
    for command in calls:
        assert command[0] == "make", command
    for step in _steps():
        script = step.get("run", "")
        assert "python" not in script and "pip" not in script, script


def test_the_make_targets_the_workflow_calls_exist_and_are_phony() -> None:
    targets, phony = _makefile_targets()
    called = {
        word
        for command in _make_calls()
        for word in command[1:]
        if "=" not in word and not word.startswith("-")
    }
    assert called >= {"install", "batch"}
    # A target that is not .PHONY is skipped when a file of that name exists.
    assert called <= targets & phony, called - (targets & phony)


def test_the_flags_passed_to_make_batch_are_flags_of_asyncpipe_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = capsys.readouterr().out
    script = _generating_step()["run"]
    for flag in set(re.findall(r"--[a-z][a-z-]+", script + _recipe("batch"))):
        assert flag in help_text, flag
    rate = re.search(r"--min-success-rate ([0-9.]+)", script)
    assert rate is not None and 0.0 < float(rate.group(1)) < 1.0


def test_the_cached_files_are_the_store_the_code_writes() -> None:
    restore = _cache_step("restore", STORE_FILE)
    save = _cache_step("save", STORE_FILE)
    cached = _cache_paths(restore)
    for params in (Params(), _repository_params()):
        store = PurePosixPath(params.paths.cache) / STORE_FILE
        # The store runs in WAL mode: after a kill, committed rows may sit in the -wal file.
        assert set(cached) == {store, store.with_name(STORE_FILE + "-wal")}
    # The cache version hashes the path list: a different list never finds the entry.
    assert _cache_paths(save) == cached


def test_each_run_saves_a_new_entry_that_the_next_run_restores_by_prefix() -> None:
    restore = _cache_step("restore", STORE_FILE)
    save = _cache_step("save", STORE_FILE)
    prefix = WORKFLOW_DATA["env"]["STORE_CACHE_PREFIX"]
    assert save["with"]["key"] == restore["with"]["key"]
    assert "${{ github.run_id }}" in save["with"]["key"]
    assert save["with"]["key"].startswith("${{ env.STORE_CACHE_PREFIX }}")
    restore_keys = [line.strip() for line in restore["with"]["restore-keys"].splitlines()]
    assert restore_keys == ["${{ env.STORE_CACHE_PREFIX }}"]
    # The prefix names the store's namespace, so a new model or dimension starts afresh.
    gemini = _repository_params().gemini
    assert f"-{gemini.model_id}-{gemini.embedding_dimension}-" in prefix


def test_the_store_is_restored_before_the_batch_and_saved_after_it_even_on_failure() -> None:
    steps = _steps()
    restore = steps.index(_cache_step("restore", STORE_FILE))
    save = steps.index(_cache_step("save", STORE_FILE))
    generating = steps.index(_generating_step())
    assert restore < generating < save
    assert "always()" in steps[save]["if"]


def test_the_outputs_are_uploaded_even_on_failure() -> None:
    upload = _one_step_using("actions/upload-artifact")
    assert upload["if"] == "always()"
    uploaded = {PurePosixPath(line.strip()) for line in upload["with"]["path"].splitlines()}
    paths = _repository_params().paths
    for folder in (paths.outputs, paths.reports, paths.themes, paths.candidates):
        assert PurePosixPath(folder) in uploaded, folder
    assert _steps().index(upload) > _steps().index(_generating_step())


def test_the_apps_puzzle_sets_file_is_among_the_uploaded_outputs() -> None:
    upload = _one_step_using("actions/upload-artifact")
    uploaded = [PurePosixPath(line.strip()) for line in upload["with"]["path"].splitlines()]
    puzzle_sets = PurePosixPath(_repository_params().output.puzzle_sets_file)
    assert any(path == puzzle_sets or path in puzzle_sets.parents for path in uploaded)


def test_dvc_lists_the_apps_puzzle_sets_file_among_the_enhance_outputs() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert _repository_params().output.puzzle_sets_file in stages["enhance"]["outs"]


def test_one_batch_at_a_time_and_time_left_to_save_after_a_timeout() -> None:
    concurrency = WORKFLOW_DATA["concurrency"]
    assert "run_id" not in concurrency["group"] and "${{" not in concurrency["group"]
    assert concurrency["cancel-in-progress"] is False
    assert _generating_step()["timeout-minutes"] < _job()["timeout-minutes"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_batch_runs_asyncpipe_run_with_gemini_and_json_logs() -> None:
    # Without the variables of a calling make (`make test ARGS=...`) leaking in.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ARGS"}
    }
    result = subprocess.run(
        ["make", "-n", "batch", "ARGS=--count 3 --seed 7"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (command,) = [line for line in result.stdout.splitlines() if "-m asyncpipe run" in line]
    assert "--provider gemini" in command
    assert "--log-format json" in command
    assert command.endswith("--count 3 --seed 7")


def test_the_history_is_kept_between_runs_like_the_store() -> None:
    history_name = PurePosixPath(Params().paths.history).name
    restore = _cache_step("restore", history_name)
    save = _cache_step("save", history_name)
    for params in (Params(), _repository_params()):
        assert _cache_paths(restore) == [PurePosixPath(params.paths.history)]
    assert _cache_paths(save) == _cache_paths(restore)
    # Its own prefix: a new model or dimension starts a fresh store, not a fresh history.
    prefix = WORKFLOW_DATA["env"]["HISTORY_CACHE_PREFIX"]
    assert prefix != WORKFLOW_DATA["env"]["STORE_CACHE_PREFIX"]
    assert save["with"]["key"] == restore["with"]["key"]
    assert save["with"]["key"].startswith("${{ env.HISTORY_CACHE_PREFIX }}")
    assert "${{ github.run_id }}" in save["with"]["key"]
    restore_keys = [line.strip() for line in restore["with"]["restore-keys"].splitlines()]
    assert restore_keys == ["${{ env.HISTORY_CACHE_PREFIX }}"]
    steps = _steps()
    generating = steps.index(_generating_step())
    assert steps.index(restore) < generating < steps.index(save)
    assert "always()" in save["if"] and "steps.generate.outcome" in save["if"]


def test_dvc_has_a_stage_that_checks_the_apps_file() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    stage = stages["puzzle_sets"]
    assert stage["cmd"] == "python -m asyncpipe validate-sets data/outputs/puzzle_sets.json"
    assert stage["deps"] == ["data/outputs/puzzle_sets.json"]
    assert "data/outputs/puzzle_sets.json" in stages["enhance"]["outs"]
