"""Typed, frozen settings read from params.yaml, validated once at the edge.

Each section of params.yaml is a small pydantic model with named defaults, so
the rest of asyncpipe receives plain values it can trust. Loading is the only
place that knows about the older pipeline's layout: its `multiprocessing`
section is accepted, the one setting of it that still means something
(`max_concurrent_requests`) is carried over, and the rest is named in a single
warning. Unknown keys are warnings too, so a typo never silently changes a run
but an older file still loads.

Every problem names the file, the line and the dotted key: a syntax error its
line and column, a wrong value the line of its key (`file, line 12:
concurrency.batch_size: ...`), an unknown key its line in the warning. A key
given twice in one mapping is an error (YAML would silently keep the last one,
dropping a whole section when a section is repeated), and true/false where a
number belongs is a wrong type, not 1 or 0.

This module reads and validates; it does not resolve paths against a working
directory (see `asyncpipe.workspace`) or decide exit codes (see `asyncpipe.cli`).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from yaml.nodes import MappingNode, Node, SequenceNode

from asyncpipe.errors import ConfigError

#: The Gemini API answers 400 to a batch of more than 100 texts.
MAX_TEXTS_PER_REQUEST = 100

BUILTIN_THEMES = "builtin"
BUILTIN_INDEX = "glove"
#: The longest theme `themes.max_theme_length` may allow, in characters: a theme is a
#: short label shown above a group of words, and longer lines are almost always text
#: pasted into the wrong file.
MAX_THEME_LENGTH = 200

_NUMBERS = (int, float, int | None, float | None)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_or_false_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take true as 1 and false as 0.
        name = info.field_name
        if (
            isinstance(value, bool)
            and name is not None
            and cls.model_fields[name].annotation in _NUMBERS
        ):
            raise ValueError("expected a number, not true or false")
        return value


class PuzzleGeneration(_Section):
    total_puzzle_count: int = Field(80, gt=0)
    words_per_theme: int = Field(4, ge=2, le=8)
    themes_per_puzzle: int = Field(4, ge=2, le=8)
    candidate_words_per_theme: int = Field(50, gt=0)
    min_similarity_threshold: float = Field(0.3, ge=-1.0, le=1.0)
    theme_selection_method: Literal["random", "sequential"] = "random"
    random_seed: int = 42
    #: Extra themes drawn beyond those the puzzles need, as a fraction of them,
    #: so that a theme that yields too few words can be replaced.
    spare_theme_fraction: float = Field(0.25, ge=0.0, le=10.0)

    @field_validator("candidate_words_per_theme")
    @classmethod
    def _candidates_cover_a_group(cls, value: int, info: ValidationInfo) -> int:
        # words_per_theme is declared first, so it is validated by now (if valid at all).
        words = info.data.get("words_per_theme")
        if words is not None and value < words:
            raise ValueError(f"must be at least words_per_theme ({words})")
        return value

    @property
    def themes_needed(self) -> int:
        return self.total_puzzle_count * self.themes_per_puzzle


class Themes(_Section):
    #: A text file with one theme per line, or "builtin" for the shipped list.
    source: str = Field(BUILTIN_THEMES, min_length=1)
    #: The older pipeline's exclusions: reference categories, not puzzle themes.
    exclude_categories: tuple[str, ...] = (
        "General reference",
        "Research",
        "Academic disciplines",
        "Library science",
    )
    min_theme_length: int = Field(3, ge=1, le=MAX_THEME_LENGTH)
    #: Longer lines of the theme source are skipped with a warning naming their line.
    max_theme_length: int = Field(60, ge=1, le=MAX_THEME_LENGTH, validate_default=True)

    @field_validator("max_theme_length")
    @classmethod
    def _max_at_least_min(cls, value: int, info: ValidationInfo) -> int:
        shortest = info.data.get("min_theme_length")
        if shortest is not None and value < shortest:
            raise ValueError(f"must be at least themes.min_theme_length ({shortest})")
        return value


class VectorSearch(_Section):
    #: "glove" for the bundled GloVe 6B 50d index, or a folder in the older index format.
    data_source: str = Field(BUILTIN_INDEX, min_length=1)
    #: Collapse candidates that share a stem (dance, dances, dancing) to the closest one.
    use_lemmatized: bool = True
    similarity_metric: Literal["cosine", "dot"] = "cosine"
    max_search_candidates: int = Field(50, gt=0)
    #: Candidates come from the N most frequent words of the index.
    vocabulary_size: int = Field(50_000, gt=0)
    min_word_length: int = Field(3, ge=1)


class Gemini(_Section):
    model_id: str = Field("gemini-embedding-001", min_length=1)
    embedding_dimension: int = Field(3072, ge=1, le=3072)
    api_key_env: str = Field("GEMINI_API_KEY", min_length=1)
    task_type: str = "SEMANTIC_SIMILARITY"
    #: Overrides the API's address (a gateway, or a local test server); else the SDK's
    #: GOOGLE_GEMINI_BASE_URL variable, else Google's address.
    base_url: str | None = None
    #: "rest": the REST method through httpx, decoded by msgspec (about half the CPU per
    #: vector); "sdk": the google-genai SDK's async client. Same requests, same errors.
    transport: Literal["rest", "sdk"] = "rest"
    api_version: str = Field("v1beta", pattern=r"^v[0-9a-z]+$")
    requests_per_minute: int = Field(2900, gt=0)
    min_request_interval: float = Field(0.0, ge=0.0)
    retry_base_delay: float = Field(1.0, ge=0.0)
    max_retries: int = Field(3, ge=0)
    #: Seconds before one embedding request is given up (and retried).
    request_timeout: float = Field(60.0, gt=0.0)


class Paths(_Section):
    themes: str = "data/themes/"
    candidates: str = "data/candidates/"
    embeddings: str = "data/embeddings/"
    outputs: str = "data/outputs/"
    reports: str = "reports/"
    cache: str = "data/cache/"


class Output(_Section):
    format: Literal["json"] = "json"
    include_metadata: bool = True
    include_similarity_scores: bool = True
    csv_precision: int = Field(6, ge=0, le=12)
    embedding_cache_file: str = "data/cache/all_embeddings.csv"
    puzzle_embeddings_file: str = "data/embeddings/puzzle_embeddings.csv"
    #: "csv" keeps the older pipeline's tables; "parquet" writes the same columns,
    #: with float32 vectors, to a file of the same name ending in .parquet.
    embedding_table_format: Literal["csv", "parquet"] = "csv"


class Logging(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    detailed_output: bool = True
    log_embedding_stats: bool = True
    #: Seconds between "Progress: ..." log lines while themes are embedded.
    progress_interval: float = Field(10.0, gt=0.0)


def _default_scoring_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class Concurrency(_Section):
    max_concurrent_requests: int = Field(8, gt=0)
    batch_size: int = Field(MAX_TEXTS_PER_REQUEST, gt=0, le=MAX_TEXTS_PER_REQUEST)
    scoring_workers: int = Field(default_factory=_default_scoring_workers, gt=0)
    embedding_cache_size: int = Field(200_000, ge=0)
    #: After SIGINT or SIGTERM: seconds that requests already sent, and then the scoring
    #: of the puzzles they complete, may still take before they are cancelled.
    shutdown_grace_seconds: float = Field(10.0, ge=0.0)


class Quality(_Section):
    """What counts as a poor puzzle, and what to do about one (see asyncpipe.scoring)."""

    #: Puzzles the embedding solver finds harder than this (0 clear .. 1 unsolvable) are poor.
    max_difficulty: float = Field(1.0, ge=0.0, le=1.0)
    #: Also treat puzzles with another split within the ambiguity margin as poor.
    reject_ambiguous: bool = False
    #: "flag": keep poor puzzles, marked; "rebuild": drop the weakest theme of each poor
    #: puzzle and assemble again from the remaining and spare themes.
    on_low_quality: Literal["flag", "rebuild"] = "flag"
    max_rebuild_rounds: int = Field(3, ge=0)


class LegacyMultiprocessing(_Section):
    """The older pipeline's process-pool settings, accepted so its files still load."""

    enabled: bool | None = None
    worker_count: int | None = None
    task_queue_size: int | None = None
    result_queue_size: int | None = None
    max_concurrent_requests: int | None = Field(None, gt=0)
    cache_sync_interval: float | None = None


class Params(_Section):
    puzzle_generation: PuzzleGeneration = PuzzleGeneration()
    themes: Themes = Themes()
    vector_search: VectorSearch = VectorSearch()
    gemini: Gemini = Gemini()
    paths: Paths = Paths()
    output: Output = Output()
    logging: Logging = Logging()
    concurrency: Concurrency = Concurrency()
    quality: Quality = Quality()
    multiprocessing: LegacyMultiprocessing | None = None


@dataclass(frozen=True)
class Overrides:
    """Command-line flags that take precedence over params.yaml."""

    count: int | None = None
    seed: int | None = None


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
    return LoadedParams(params=params, source=source, warnings=tuple(warnings), notes=tuple(notes))


def _read_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[_Location, int]]:
    """The file's mapping, and the line (1-based) of every key and list item in it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: params file is a directory, expected a YAML file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read params file ({error.strerror or error})") from None
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
