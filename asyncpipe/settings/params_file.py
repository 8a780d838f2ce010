"""Reading params.yaml: validated `Params`, and one clear line for each problem.

Loading is the only place that knows about the older pipeline's layout: its
`multiprocessing` section is accepted, the one setting of it that still means
something (`max_concurrent_requests`) is carried over, and the rest is named in
a single warning. Unknown keys are warnings too, so a typo never silently
changes a run but an older file still loads.

Every problem names the file, the line and the dotted key: a syntax error its
line and column, a wrong value the line of its key (`file, line 12:
concurrency.batch_size: ...`), an unknown key its line in the warning. A key
given twice in one mapping is an error (YAML would silently keep the last one,
dropping a whole section when a section is repeated).

This module reads and validates; it does not decide exit codes (see `asyncpipe.cli`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from asyncpipe.errors import ConfigError
from asyncpipe.io.files import read_input
from asyncpipe.settings.sections import Params


@dataclass(frozen=True)
class Overrides:
    """Command-line flags that take precedence over params.yaml."""

    count: int | None = None
    seed: int | None = None
    #: --history, made absolute by the command line: `paths.history`.
    history: str | None = None
    set_name: str | None = None
    #: --embedding-mode: `gemini.mode`.
    embedding_mode: str | None = None


@dataclass(frozen=True)
class LoadedParams:
    """Validated params plus what the loader wants the user told."""

    params: Params
    source: str
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


#: A place in params.yaml: section and key names, and list positions.
_Location = tuple[str | int, ...]


def load_params(path: Path | None, overrides: Overrides = Overrides()) -> LoadedParams:
    """Read, migrate and validate a params file (or the defaults when `path` is None).

    Raises ConfigError with one line naming the file, the line, the key and the problem.
    """
    lines: dict[_Location, int] = {}
    if path is None:
        raw: dict[str, Any] = {}
        source = "built-in defaults"
    else:
        raw, lines = _read_yaml_mapping(path)
        source = str(path)

    warnings: list[str] = []
    notes: list[str] = []
    _empty_sections_take_defaults(raw)
    unknown = _drop_unknown_keys(raw, Params)
    if unknown:
        named = ", ".join(_describe_unknown(location, lines) for location in unknown)
        warnings.append(f"{source}: ignoring unknown keys: {named}")
    _apply_overrides(raw, overrides)
    _carry_over_legacy_concurrency(raw, source, warnings, notes)
    legacy = lines.get(("multiprocessing", "max_concurrent_requests"))
    if legacy is not None:
        lines.setdefault(("concurrency", "max_concurrent_requests"), legacy)

    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe_first_error(error, source, lines)) from None
    concurrency = params.concurrency
    if (
        concurrency.embedding_cache_size is not None
        and "embedding_cache_mb" not in concurrency.model_fields_set
    ):
        notes.append(
            f"concurrency.embedding_cache_size ({concurrency.embedding_cache_size} vectors) "
            "bounds the in-memory cache; concurrency.embedding_cache_mb is its newer name, in MB"
        )
    return LoadedParams(params=params, source=source, warnings=tuple(warnings), notes=tuple(notes))


def _read_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[_Location, int]]:
    """The file's mapping, and the line (1-based) of every key and list item in it."""
    data = read_input(
        path,
        missing=f"{path}: params file not found",
        directory=f"{path}: params file is a directory, expected a YAML file",
        unreadable=lambda error: f"{path}: cannot read params file ({error.strerror or error})",
        error=ConfigError,
    )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        offset = bom + error.start
        line = data[:offset].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: params file is not UTF-8 text "
            f"(bad byte 0x{data[offset]:02x} at offset {offset}); save it as UTF-8"
        ) from None
    try:
        loaded = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        context, started = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and started is not None and (mark is None or started.line != mark.line):
            problem += f"; {context} that starts at line {started.line + 1}"
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if loaded is None:
        return {}, {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (puzzle_generation:, themes:, ...), "
            f"got {_kind(loaded)}"
        )
    lines: dict[_Location, int] = {}
    if root is not None:
        _index_lines(root, (), lines, path)
    return loaded, lines


def _index_lines(node: Node, prefix: _Location, lines: dict[_Location, int], path: Path) -> None:
    """Record where each key and list item starts; a key twice in one mapping is an error."""
    if len(prefix) > 8:  # deeper than any setting: nothing to point at
        return
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key == "<<":  # a merge key: its keys are reported where they were defined
                continue
            line = key_node.start_mark.line + 1
            if key in first:
                dotted = ".".join(str(part) for part in (*prefix, key))
                raise ConfigError(
                    f"{path}, line {line}: {dotted} is given twice (first at line "
                    f"{first[key]}); YAML would silently keep only the last one: remove one"
                )
            first[key] = line
            lines[(*prefix, key)] = line
            _index_lines(value_node, (*prefix, key), lines, path)
    elif isinstance(node, SequenceNode):
        for position, item in enumerate(node.value):
            lines[(*prefix, position)] = item.start_mark.line + 1
            _index_lines(item, (*prefix, position), lines, path)


def _line_of(location: _Location, lines: dict[_Location, int]) -> int | None:
    """The line of the deepest part of `location` that the file holds."""
    for end in range(len(location), 0, -1):
        line = lines.get(location[:end])
        if line is not None:
            return line
    return None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    return f"a {type(value).__name__}"


def _empty_sections_take_defaults(raw: dict[str, Any]) -> None:
    """A section whose keys are all commented out reads as null in YAML: treat it as empty."""
    for key, value in raw.items():
        if value is None and key in Params.model_fields and key != "multiprocessing":
            raw[key] = {}


def _drop_unknown_keys(
    raw: dict[str, Any], model: type[BaseModel], prefix: _Location = ()
) -> list[_Location]:
    """Remove keys the model does not know, recursively; return where they were."""
    unknown: list[_Location] = []
    for key in list(raw):
        fields = model.model_fields
        if not isinstance(key, str) or key not in fields:
            unknown.append((*prefix, str(key)))
            del raw[key]
            continue
        annotation = fields[key].annotation
        section = _section_model(annotation)
        if section is not None and isinstance(raw[key], dict):
            unknown.extend(_drop_unknown_keys(raw[key], section, prefix=(*prefix, key)))
    return unknown


def _describe_unknown(location: _Location, lines: dict[_Location, int]) -> str:
    """`section.key (line 7, did you mean section.other?)`, as far as it is known."""
    details: list[str] = []
    line = lines.get(location)
    if line is not None:
        details.append(f"line {line}")
    model: type[BaseModel] | None = Params
    for part in location[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        model = _section_model(field.annotation) if field is not None else None
    if model is not None:
        close = difflib.get_close_matches(str(location[-1]), list(model.model_fields), n=1)
        if close:
            details.append("did you mean " + ".".join([*map(str, location[:-1]), close[0]]) + "?")
    dotted = ".".join(str(part) for part in location)
    return f"{dotted} ({', '.join(details)})" if details else dotted


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for member in getattr(annotation, "__args__", ()):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _apply_overrides(raw: dict[str, Any], overrides: Overrides) -> None:
    generation = raw.get("puzzle_generation")
    if generation is None:
        generation = raw["puzzle_generation"] = {}
    if not isinstance(generation, dict):
        return  # validation reports the wrong type
    if overrides.count is not None:
        generation["total_puzzle_count"] = overrides.count
    if overrides.seed is not None:
        generation["random_seed"] = overrides.seed
    if overrides.history is not None:
        paths = raw.setdefault("paths", {})
        if isinstance(paths, dict):  # else validation reports the wrong type
            paths["history"] = overrides.history
    if overrides.embedding_mode is not None:
        gemini = raw.setdefault("gemini", {})
        if isinstance(gemini, dict):  # else validation reports the wrong type
            gemini["mode"] = overrides.embedding_mode
    if overrides.set_name is not None:
        output = raw.get("output")
        if output is None:
            output = raw["output"] = {}
        if isinstance(output, dict):
            output["set_name"] = overrides.set_name


def _carry_over_legacy_concurrency(
    raw: dict[str, Any], source: str, warnings: list[str], notes: list[str]
) -> None:
    legacy = raw.get("multiprocessing")
    if not isinstance(legacy, dict):
        return
    obsolete = sorted(
        f"multiprocessing.{key}" for key in legacy if key != "max_concurrent_requests"
    )
    legacy_limit = legacy.get("max_concurrent_requests")
    concurrency = raw.get("concurrency")
    if legacy_limit is not None:
        if isinstance(concurrency, dict) and "max_concurrent_requests" in concurrency:
            notes.append(
                "concurrency.max_concurrent_requests "
                f"({concurrency['max_concurrent_requests']}) overrides "
                f"multiprocessing.max_concurrent_requests ({legacy_limit})"
            )
        else:
            if concurrency is None:
                concurrency = raw["concurrency"] = {}
            if isinstance(concurrency, dict):
                concurrency["max_concurrent_requests"] = legacy_limit
                notes.append(
                    f"using multiprocessing.max_concurrent_requests ({legacy_limit}) "
                    "as concurrency.max_concurrent_requests"
                )
    if obsolete:
        warnings.append(
            f"{source}: these settings no longer apply (asyncpipe runs as one asyncio process): "
            + ", ".join(obsolete)
        )


def _describe_first_error(error: ValidationError, source: str, lines: dict[_Location, int]) -> str:
    """`file, line N: section.key: what is wrong (got value)`, for the first problem."""
    first = error.errors()[0]
    location = tuple(first["loc"])
    dotted = ".".join(str(part) for part in location) or "(top level)"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    more = len(error.errors()) - 1
    suffix = f" [and {more} more problem{'s' if more > 1 else ''}]" if more else ""
    line = _line_of(location, lines)
    where = f"{source}, line {line}" if line is not None else source
    return f"{where}: {dotted}: {message}{shown}{suffix}"
