"""Bad input, end to end: each case is a real `python -m asyncpipe` subprocess.

Every bad input must give one log line saying what is wrong and where (the file,
the line, the key), a documented exit code (2 for bad input, 74 for an output that
cannot be written, 1 when puzzles could not be made), no traceback, and keep what
was already computed. Input that can be repaired (odd unicode, blank lines, CRLF
line ends, unknown keys) succeeds, with a warning naming what was skipped.

To keep the module fast, the quick runs (those that stop while reading the params
or the theme source, about a second each, registered with `@quick`) are all made
together, two at a time, by the `quick_runs` fixture, and each test inspects its
own; the three runs against the Gemini test server likewise (`nonsense_runs`). One
ordinary run (`baseline`) is made per module and copied by the cases that need
earlier outputs.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from asyncpipe.io.theme_source import read_theme_source
from tests.gemini_server import GeminiTestServer, ServerConfig
from tests.support import (
    ALL_TABLE,
    CANDIDATES,
    FINAL,
    METADATA,
    REPO,
    SELECTED,
    load,
    run_cli,
)

pytestmark = pytest.mark.slow

EXIT_FEWER_PUZZLES = 1
EXIT_BAD_INPUT = 2
EXIT_OUTPUT = 74


GEMINI_KEY = "AIzaSy-asyncpipe-BADINPUT-5c1e8a2f90"


# --- helpers ----------------------------------------------------------------------------


#: One scoring process instead of two: a second saves nothing on 2 puzzles but its start.
FAST = {"scoring_workers": "1"}


def new_workdir(folder: Path, changes: dict[str, str] | None = None) -> Path:
    """A folder holding the project's params.yaml, comments and layout kept, keys changed.

    `changes` maps a key name to the YAML text of its new value: a name unique in
    params.yaml, or "section.key" for one that is not ("themes.source").
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    for key, value in {**FAST, **(changes or {})}.items():
        section, _, name = key.rpartition(".")
        start, end = 0, len(text)
        if section:
            block = re.search(rf"(?ms)^{section}:\n.*?(?=^\S|\Z)", text)
            assert block is not None, section
            start, end = block.span()
        part, replaced = re.subn(
            rf"(?m)^([ \t]+{name}:) [^#\n]*", rf"\g<1> {value}  ", text[start:end]
        )
        assert replaced == 1, key
        text = text[:start] + part + text[end:]
    (folder / "params.yaml").write_text(text, encoding="utf-8")
    return folder


def line_of(path: Path, key: str) -> int:
    """The line (1-based) on which `key:` is set in a YAML file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith(f"{key}:"))


def with_theme_file(folder: Path, content: str | bytes) -> Path:
    """A work folder whose theme source is themes.txt, holding `content`, drawn in file order."""
    new_workdir(folder, {"themes.source": '"themes.txt"', "theme_selection_method": '"sequential"'})
    path = folder / "themes.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def the_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The one ERROR line of a run that exited with `code`, holding every fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def warnings_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if " WARNING " in line]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes."""
    return [path for path in folder.rglob("*.tmp") if path.is_file()]


def file_bytes(folder: Path) -> dict[Path, bytes]:
    return {
        path.relative_to(folder): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def file_size_limit(limit: int) -> Callable[[], None]:
    """Files may not grow beyond `limit` bytes, even as root: a write past it fails with
    EFBIG, as on a full disk (SIGXFSZ, which would kill the process instead, is ignored)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


#: prctl(2) option, and the capability that lets root write where permission bits forbid.
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1


def permission_bits_bind_root() -> None:
    """As root, drop CAP_DAC_OVERRIDE from the bounding set: after exec the process is
    still root but a folder's mode 0500 stops it writing there, as it stops anyone else."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ordinary offline run of 2 puzzles; copy it, never change it."""
    folder = new_workdir(tmp_path_factory.mktemp("baseline"))
    result = run_cli(["run", "--count", "2"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def copy_of(baseline: Path, folder: Path) -> Path:
    shutil.copytree(baseline, folder)
    return folder


# --- the quick runs ---------------------------------------------------------------------


#: name -> a function that prepares a work folder and returns the arguments to run there.
QUICK: dict[str, Callable[[Path], list[str]]] = {}


def quick(name: str) -> Callable[[Callable[[Path], list[str]]], Callable[[Path], list[str]]]:
    """Register a quick run under `name`."""

    def register(prepare: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        assert name not in QUICK, name
        QUICK[name] = prepare
        return prepare

    return register


@dataclass(frozen=True)
class Run:
    folder: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every quick run, made two at a time (the machine has two cores)."""
    root = tmp_path_factory.mktemp("quick")

    def launch(name: str) -> Run:
        folder = root / name
        folder.mkdir()
        return Run(folder, run_cli(QUICK[name](folder), cwd=folder))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(QUICK, pool.map(launch, QUICK), strict=True))


SELECT_2 = ["select-themes", "--count", "2"]


def theme_file_case(content: str | bytes) -> Callable[[Path], list[str]]:
    """A quick run of select-themes on a theme file holding `content`."""

    def prepare(folder: Path) -> list[str]:
        with_theme_file(folder, content)
        return SELECT_2

    return prepare


def params_case(text: str) -> Callable[[Path], list[str]]:
    """A quick run of select-themes with a params.yaml holding `text`."""

    def prepare(folder: Path) -> list[str]:
        (folder / "params.yaml").write_text(text, encoding="utf-8")
        return SELECT_2

    return prepare


def value_case(key: str, value: str) -> Callable[[Path], list[str]]:
    """A quick run of select-themes with the project's params, `key` set to `value`."""

    def prepare(folder: Path) -> list[str]:
        new_workdir(folder, {key: value})
        return ["select-themes"]

    return prepare


# --- the theme source -------------------------------------------------------------------


@quick("theme-missing")
def _theme_missing(folder: Path) -> list[str]:
    with_theme_file(folder, "").unlink()
    return SELECT_2


def test_a_missing_theme_source_exits_2_naming_it_and_the_key(quick_runs: dict[str, Run]) -> None:
    run = quick_runs["theme-missing"]

    the_error(
        run.result, EXIT_BAD_INPUT, str(run.folder / "themes.txt"), "not found", "themes.source"
    )
    assert not (run.folder / SELECTED).exists()


NO_THEMES = {"empty": "", "only-blank-and-comment-lines": "# Birds\n\n   \n# Fish\n\t\n"}
for _name, _content in NO_THEMES.items():
    quick(f"theme-{_name}")(theme_file_case(_content))


@pytest.mark.parametrize("name", NO_THEMES)
def test_a_theme_source_without_themes_exits_2_naming_it(
    quick_runs: dict[str, Run], name: str
) -> None:
    run = quick_runs[f"theme-{name}"]

    the_error(
        run.result,
        EXIT_BAD_INPUT,
        str(run.folder / "themes.txt"),
        "holds no themes",
        "themes.source",
    )


#: name -> (file content, where the error must say the first NUL byte is).
BINARY = {
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "line 3, offset 8"),
    "nul-byte": (b"Birds\nFish\nTre\x00es\n", "line 3, offset 14"),
}
for _name, (_bytes, _) in BINARY.items():
    quick(f"theme-{_name}")(theme_file_case(_bytes))


@pytest.mark.parametrize("name", BINARY)
def test_a_binary_theme_source_exits_2_naming_it_and_where(
    quick_runs: dict[str, Run], name: str
) -> None:
    run = quick_runs[f"theme-{name}"]

    the_error(run.result, EXIT_BAD_INPUT, str(run.folder / "themes.txt"), "binary", BINARY[name][1])


@quick("theme-latin-1")
def _theme_latin_1(folder: Path) -> list[str]:
    with_theme_file(folder, "Birds\nFish\nCafé culture\n".encode("latin-1"))
    return SELECT_2


def test_a_theme_source_that_is_not_utf8_exits_2_naming_the_line_and_byte(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["theme-latin-1"]

    the_error(
        run.result,
        EXIT_BAD_INPUT,
        str(run.folder / "themes.txt"),
        "not UTF-8",
        "0xe9",
        "line 3",
        "offset 14",
    )


@quick("theme-utf-16")
def _theme_utf_16(folder: Path) -> list[str]:
    with_theme_file(folder, "Birds\nFish\n".encode("utf-16"))
    return SELECT_2


def test_a_utf16_theme_source_exits_2_saying_to_save_it_as_utf8(quick_runs: dict[str, Run]) -> None:
    run = quick_runs["theme-utf-16"]

    the_error(
        run.result, EXIT_BAD_INPUT, str(run.folder / "themes.txt"), "UTF-16", "save it as UTF-8"
    )


#: A theme file with every kind of oddity, CRLF line ends, and 13 usable themes:
#: (line as written, theme it must become, or None when the line is skipped).
MESSY_LINES: list[tuple[str, str | None]] = [
    ("\ufeffBirds", "Birds"),  # 1: byte order mark
    ("# my themes", None),  # 2: comment
    ("", None),  # 3: blank
    ("  \t ", None),  # 4: blank
    ("Fi\u200bsh", "Fish"),  # 5: zero-width space
    (unicodedata.normalize("NFD", "Café culture"), "Café culture"),  # 6: combining accent
    ("\u202eTrees\u202c", "Trees"),  # 7: right-to-left override
    ("ציפורים", "ציפורים"),  # 8: right-to-left text
    ("Wea\x07ther", None),  # 9: control character
    ("\U0001f426\U0001f426\U0001f426", None),  # 10: emoji, no letter
    ("Flowers \U0001f338", "Flowers \U0001f338"),  # 11: emoji beside a word
    ("x" * 10_000, None),  # 12: far too long
    ("\u0301\u0301", None),  # 13: combining marks alone
    ("Musical\u00a0\u00a0instruments", "Musical instruments"),  # 14: no-break spaces
    ("Vegetables\u00ad", "Vegetables"),  # 15: soft hyphen
    ("Colors", "Colors"),  # 16
    ("Sports\u200d", "Sports"),  # 17: zero-width joiner
    ("Tools", "Tools"),  # 18
    ("Insects", "Insects"),  # 19
    ("Metals", "Metals"),  # 20
]


@quick("theme-messy")
def _theme_messy(folder: Path) -> list[str]:
    with_theme_file(folder, "".join(line + "\r\n" for line, _ in MESSY_LINES))
    return SELECT_2


def test_odd_unicode_in_the_theme_source_is_normalised_or_skipped_and_the_run_succeeds(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["theme-messy"]
    assert run.result.returncode == 0, run.result.stderr
    assert "Traceback" not in run.result.stderr

    selected = load(run.folder, SELECTED)
    usable = [theme for _, theme in MESSY_LINES if theme is not None]
    # Two puzzles need 8 themes, plus 4 spares, drawn in file order.
    assert selected["themes"] + selected["spare_themes"] == usable[:12]
    assert selected["available_count"] == len(usable)
    for theme in usable:
        assert unicodedata.is_normalized("NFC", theme)


def test_each_skipped_theme_line_gets_a_warning_naming_its_line_number(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["theme-messy"]
    source = str(run.folder / "themes.txt")
    warnings = warnings_of(run.result)

    expected = {
        9: "control character U+0007",
        10: "no letters",
        12: "10000 characters is longer than themes.max_theme_length (60)",
        13: "no letters",
    }
    assert len(warnings) == len(expected), run.result.stderr
    for number, reason in expected.items():
        named = [line for line in warnings if f"{source}, line {number}: " in line]
        assert len(named) == 1, (number, warnings)
        assert reason in named[0]
        assert "skipped" in named[0]
    # The 10,000 characters themselves are not dumped into the log.
    assert all(len(line) < 300 for line in warnings)


def test_blank_lines_and_crlf_line_ends_are_read_without_a_warning(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["theme-messy"]
    selected = load(run.folder, SELECTED)

    assert not any("\r" in theme for theme in selected["themes"] + selected["spare_themes"])
    # CRLF is one line end: the warnings count lines as an editor does (see above), and
    # the blank lines 3 and 4 are not mentioned.
    warnings = warnings_of(run.result)
    assert not any(", line 3:" in line or ", line 4:" in line for line in warnings)


@quick("theme-too-few")
def _theme_too_few(folder: Path) -> list[str]:
    with_theme_file(folder, "Birds\nFish\nBad\x01line\n\U0001f426\nxx\nTrees\n")
    return SELECT_2


def test_too_few_usable_themes_after_skipping_exits_2_with_the_counts(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["theme-too-few"]
    path = run.folder / "themes.txt"

    the_error(run.result, EXIT_BAD_INPUT, str(path), "need 8 themes", "only 3 of 4", "1 too short")
    warnings = warnings_of(run.result)
    for number in (3, 4, 5):
        assert any(f"{path}, line {number}: " in line for line in warnings), warnings


@quick("count-10000")
def _count_10000(folder: Path) -> list[str]:
    new_workdir(folder)
    return ["run", "--count", "10000"]


def test_more_puzzles_than_themes_exits_2_naming_both_counts_and_no_reuse(
    quick_runs: dict[str, Run],
) -> None:
    available = len(read_theme_source(None)[0])

    the_error(
        quick_runs["count-10000"].result,
        EXIT_BAD_INPUT,
        "builtin",
        "10000 puzzles need 40000 themes",
        f"only {available} of {available}",
        "reusing themes is not supported",
        f"at most {available // 4} puzzles",
    )


# --- params.yaml ------------------------------------------------------------------------


@quick("params-not-yaml")
def _params_not_yaml(folder: Path) -> list[str]:
    params = new_workdir(folder) / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("  batch_size: 100", "  batch_size: [100"), encoding="utf-8")
    return SELECT_2


def test_params_that_are_not_yaml_exit_2_naming_the_line_and_column(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["params-not-yaml"]
    params = run.folder / "params.yaml"

    error = the_error(run.result, EXIT_BAD_INPUT, f"{params}, line ", "not valid YAML", "column")
    assert f"starts at line {line_of(params, 'batch_size')}" in error
    assert not (run.folder / "data").exists()


#: name -> (params.yaml, what the error must say it holds instead of a mapping).
NOT_A_MAPPING = {
    "list": ("- puzzle_generation\n- themes\n", "a list"),
    "scalar": ("just some words\n", "a string"),
}
for _name, (_text, _) in NOT_A_MAPPING.items():
    quick(f"params-{_name}")(params_case(_text))


@pytest.mark.parametrize("name", NOT_A_MAPPING)
def test_params_that_are_not_a_mapping_exit_2(quick_runs: dict[str, Run], name: str) -> None:
    run = quick_runs[f"params-{name}"]

    the_error(
        run.result,
        EXIT_BAD_INPUT,
        str(run.folder / "params.yaml"),
        "mapping",
        NOT_A_MAPPING[name][1],
    )


#: name -> (key, its dotted name, the YAML of a wrong value, what the error must say).
WRONG_VALUES = {
    "string-count": ("total_puzzle_count", "puzzle_generation", '"many"', "integer"),
    "boolean-count": ("total_puzzle_count", "puzzle_generation", "true", "true or false"),
    "negative-count": ("total_puzzle_count", "puzzle_generation", "-5", "greater than 0"),
    "zero-count": ("total_puzzle_count", "puzzle_generation", "0", "greater than 0"),
    "zero-words-per-theme": ("words_per_theme", "puzzle_generation", "0", "greater than or"),
    "zero-requests": ("max_concurrent_requests", "concurrency", "0", "greater than 0"),
    "negative-batch-size": ("batch_size", "concurrency", "-1", "greater than 0"),
    "max-below-min": ("max_theme_length", "themes", "2", "min_theme_length (3)"),
}
for _name, (_key, _, _value, _) in WRONG_VALUES.items():
    quick(f"value-{_name}")(value_case(_key, _value))


@pytest.mark.parametrize("name", WRONG_VALUES)
def test_a_wrong_value_exits_2_naming_the_file_line_and_key(
    quick_runs: dict[str, Run], name: str
) -> None:
    run = quick_runs[f"value-{name}"]
    key, section, _, problem = WRONG_VALUES[name]
    params = run.folder / "params.yaml"

    where = f"{params}, line {line_of(params, key)}: {section}.{key}: "
    the_error(run.result, EXIT_BAD_INPUT, where, problem)
    assert not (run.folder / "data").exists()


@quick("params-unknown-keys")
def _params_unknown_keys(folder: Path) -> list[str]:
    params = new_workdir(folder) / "params.yaml"
    text = params.read_text(encoding="utf-8")
    text = text.replace("  batch_size: 100", "  batch_sise: 100").replace("\nquality:", "\nqualty:")
    params.write_text(text, encoding="utf-8")
    return SELECT_2


def test_unknown_keys_are_a_warning_naming_each_with_its_line_and_the_run_goes_on(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["params-unknown-keys"]
    params = run.folder / "params.yaml"

    assert run.result.returncode == 0, run.result.stderr
    assert "Traceback" not in run.result.stderr
    warnings = [line for line in warnings_of(run.result) if "unknown keys" in line]
    assert len(warnings) == 1, run.result.stderr
    assert str(params) in warnings[0]
    assert (
        f"concurrency.batch_sise (line {line_of(params, 'batch_sise')}, "
        "did you mean concurrency.batch_size?)" in warnings[0]
    )
    assert f"qualty (line {line_of(params, 'qualty')}, did you mean quality?)" in warnings[0]
    assert load(run.folder, SELECTED)["total_count"] == 8


@quick("params-key-twice")
def _params_key_twice(folder: Path) -> list[str]:
    params = new_workdir(folder) / "params.yaml"
    with params.open("a", encoding="utf-8") as handle:
        handle.write("\npuzzle_generation:\n  total_puzzle_count: 3\n")
    return ["select-themes"]


def test_a_key_given_twice_exits_2_naming_both_lines(quick_runs: dict[str, Run]) -> None:
    run = quick_runs["params-key-twice"]
    params = run.folder / "params.yaml"
    first = line_of(params, "puzzle_generation")
    second = len(params.read_text(encoding="utf-8").splitlines()) - 1

    the_error(
        run.result,
        EXIT_BAD_INPUT,
        f"{params}, line {second}: puzzle_generation is given twice",
        f"first at line {first}",
    )


@quick("params-absent")
def _params_absent(folder: Path) -> list[str]:
    return ["select-themes", "--params", "absent.yaml"]


def test_a_params_file_that_does_not_exist_exits_2(quick_runs: dict[str, Run]) -> None:
    the_error(
        quick_runs["params-absent"].result, EXIT_BAD_INPUT, "absent.yaml", "params file not found"
    )


@quick("params-directory")
def _params_directory(folder: Path) -> list[str]:
    (folder / "settings").mkdir()
    return ["select-themes", "--params", "settings"]


def test_a_params_file_that_is_a_directory_exits_2(quick_runs: dict[str, Run]) -> None:
    the_error(quick_runs["params-directory"].result, EXIT_BAD_INPUT, "settings", "is a directory")


@quick("params-latin-1")
def _params_latin_1(folder: Path) -> list[str]:
    (folder / "params.yaml").write_bytes(
        b"puzzle_generation:\n  total_puzzle_count: 3  # caf\xe9\n"
    )
    return ["select-themes"]


def test_a_params_file_that_is_not_utf8_exits_2_naming_the_line(
    quick_runs: dict[str, Run],
) -> None:
    run = quick_runs["params-latin-1"]

    the_error(
        run.result, EXIT_BAD_INPUT, f"{run.folder / 'params.yaml'}, line 2", "not UTF-8", "0xe9"
    )


# --- a stage run alone, without its input -----------------------------------------------


@pytest.mark.parametrize(
    ("stage", "present", "missing", "run_first"),
    [
        ("select-candidates", [], SELECTED, "asyncpipe select-themes"),
        ("enhance", [SELECTED], CANDIDATES, "asyncpipe select-candidates"),
    ],
    ids=["select-candidates", "enhance"],
)
def test_a_stage_without_its_input_exits_2_naming_the_file_and_the_stage_to_run_first(
    baseline: Path,
    tmp_path: Path,
    stage: str,
    present: list[Path],
    missing: Path,
    run_first: str,
) -> None:
    new_workdir(tmp_path)
    for relative in present:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(baseline / relative, tmp_path / relative)

    result = run_cli([stage, "--count", "2"], cwd=tmp_path)

    the_error(result, EXIT_BAD_INPUT, str(tmp_path / missing), "not found", run_first)


@pytest.mark.parametrize(
    ("stage", "broken", "damage", "named"),
    [
        ("select-candidates", SELECTED, "corrupt", "not valid JSON"),
        ("select-candidates", SELECTED, "truncated", "truncated"),
        ("enhance", CANDIDATES, "truncated", "truncated"),
    ],
    ids=["corrupt-selected-themes", "half-selected-themes", "half-candidate-words"],
)
def test_a_corrupt_or_truncated_stage_input_exits_2_naming_the_file(
    baseline: Path, tmp_path: Path, stage: str, broken: Path, damage: str, named: str
) -> None:
    folder = copy_of(baseline, tmp_path / "work")
    path = folder / broken
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    else:
        path.write_bytes(content.replace(b'",', b'"', 1))

    result = run_cli([stage, "--count", "2"], cwd=folder)

    the_error(result, EXIT_BAD_INPUT, f"{path}, line ", named)


# --- outputs that cannot be written -----------------------------------------------------


def test_an_output_folder_under_a_regular_file_exits_74_before_any_work(
    tmp_path: Path,
) -> None:
    new_workdir(tmp_path, {"outputs": '"blocker/outputs/"'})
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a folder should be\n", encoding="utf-8")

    result = run_cli(["run", "--count", "2"], cwd=tmp_path)

    the_error(
        result,
        EXIT_OUTPUT,
        f"{blocker / 'outputs'}: cannot write",
        f"{blocker} is a file, not a folder",
    )
    assert blocker.read_text(encoding="utf-8") == "a regular file where a folder should be\n"
    # Found before any stage ran (with Gemini, before any request was paid for).
    assert not (tmp_path / SELECTED).exists()
    assert "Selected" not in result.stderr
    assert leftovers(tmp_path) == []
    blocker.unlink()
    fixed = run_cli(["run", "--count", "2"], cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert len(load(tmp_path, Path("blocker/outputs/final_puzzles.json"))) == 2


def test_an_output_folder_without_write_permission_exits_74_and_keeps_the_old_puzzles(
    baseline: Path, tmp_path: Path
) -> None:
    if os.geteuid() == 0 and not sys.platform.startswith("linux"):
        pytest.skip("running as root, which mode 0500 does not stop, and not on Linux")
    folder = copy_of(baseline, tmp_path / "work")
    outputs = folder / FINAL.parent
    before = (folder / FINAL).read_bytes()
    outputs.chmod(0o500)
    try:
        result = run_cli(
            ["run", "--count", "2", "--seed", "5"], folder, preexec=permission_bits_bind_root
        )
    except subprocess.SubprocessError as error:  # the preexec function failed
        pytest.skip(
            f"running as root without CAP_SETPCAP: cannot give up CAP_DAC_OVERRIDE ({error})"
        )
    finally:
        outputs.chmod(0o755)

    the_error(result, EXIT_OUTPUT, f"{folder / FINAL.parent}: cannot write", "permission denied")
    assert (folder / FINAL).read_bytes() == before
    assert load(folder, SELECTED)["random_seed"] != 5  # stopped before the first stage
    assert leftovers(folder) == []


def test_a_full_disk_exits_74_naming_the_file_and_keeps_its_previous_version(
    baseline: Path, tmp_path: Path
) -> None:
    folder = copy_of(baseline, tmp_path / "work")
    before = file_bytes(folder)
    # Small files fit under the limit; the embedding table does not (it holds every
    # text embedded, about twice the next largest file, the review page).
    largest_other = max(len(data) for path, data in before.items() if path != ALL_TABLE)
    limit = (len(before[ALL_TABLE]) + largest_other) // 2
    too_large = {path: len(data) for path, data in before.items() if len(data) >= limit}
    assert set(too_large) == {ALL_TABLE}, too_large

    result = run_cli(["run", "--count", "3", "--seed", "5"], folder, preexec=file_size_limit(limit))

    the_error(result, EXIT_OUTPUT, str(folder / ALL_TABLE), "file too large")
    after = file_bytes(folder)
    assert after[ALL_TABLE] == before[ALL_TABLE]
    assert leftovers(folder) == []
    # What this run finished before the table is kept: its earlier stages, and in the
    # checkpoint every theme and score, so --resume once there is room redoes none of it.
    assert load(folder, SELECTED)["random_seed"] == 5
    assert after[CANDIDATES] != before[CANDIDATES]
    resumed = run_cli(["run", "--count", "3", "--seed", "5", "--resume"], cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert "12 themes finished and 3 puzzles scored are not redone" in resumed.stderr


# --- an API answering nonsense ----------------------------------------------------------


#: The server's fault (a ServerConfig rate, for every request) -> the reason every theme
#: must fail with.
NONSENSE = {
    "garbage_rate": "the answer is not an embedding batch (JSON is malformed",
    "wrong_shape_rate": "the answer is not an embedding batch (Object missing required",
    "wrong_dimension_rate": "the answer holds vectors of shape (63,), expected (64,)",
}


@pytest.fixture(scope="module")
def nonsense_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """`run --provider gemini --count 2` against a test server with each fault, side by side."""
    root = tmp_path_factory.mktemp("nonsense")

    def launch(fault: str) -> Run:
        folder = root / fault
        folder.mkdir()
        config = ServerConfig(valid_keys=frozenset({GEMINI_KEY}), **{fault: 1.0})
        with GeminiTestServer(config) as server:
            settings = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
            settings["gemini"].update(
                base_url=server.base_url,
                embedding_dimension=64,
                retry_base_delay=0.01,
                max_retries=1,
            )
            settings["concurrency"]["scoring_workers"] = 1
            (folder / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
            result = run_cli(
                ["run", "--provider", "gemini", "--count", "2"],
                cwd=folder,
                env={"GEMINI_API_KEY": GEMINI_KEY},
                timeout=60,
            )
            assert server.request_count > 0
        return Run(folder, result)

    with ThreadPoolExecutor(max_workers=len(NONSENSE)) as pool:
        return dict(zip(NONSENSE, pool.map(launch, NONSENSE), strict=True))


@pytest.mark.parametrize(
    "fault", NONSENSE, ids=["not-json", "json-without-embeddings", "wrong-dimension"]
)
def test_an_api_answering_nonsense_exits_1_with_the_reason_and_no_traceback(
    nonsense_runs: dict[str, Run], fault: str
) -> None:
    run, reason = nonsense_runs[fault], NONSENSE[fault]
    stderr = run.result.stderr

    assert run.result.returncode == EXIT_FEWER_PUZZLES, stderr
    assert "Traceback" not in stderr
    assert GEMINI_KEY not in stderr
    assert any(reason in line for line in stderr.splitlines()), stderr
    metadata = load(run.folder, METADATA)
    assert metadata["counts"]["puzzles_generated"] == 0
    # Every theme embedded failed for that reason: at least the 8 the puzzles needed.
    failures = metadata["failed_themes"].values()
    assert sum(reason in failure["reason"] for failure in failures) >= 8
    assert {failure["kind"] for failure in failures} == {"api_failed"}
    assert any("0 of 2 puzzles made" in line for line in warnings_of(run.result))
