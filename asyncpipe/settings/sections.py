"""Typed, frozen settings: one small pydantic model per section of params.yaml.

Each section has named defaults, so the rest of asyncpipe receives plain values
it can trust; a value outside its range, or true/false where a number belongs,
fails validation. Reading the file (line numbers, unknown keys, the older
pipeline's layout, command-line overrides) is `asyncpipe.settings.params_file`'s job;
resolving paths against a working directory is `asyncpipe.settings.workspace`'s.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

#: The Gemini API answers 400 to a batch of more than 100 texts.
MAX_TEXTS_PER_REQUEST = 100

BUILTIN_THEMES = "builtin"
BUILTIN_INDEX = "glove"
#: The longest theme `themes.max_theme_length` may allow, in characters: a theme is a
#: short label shown above a group of words, and longer lines are almost always text
#: pasted into the wrong file.
MAX_THEME_LENGTH = 200

#: What the puzzle app accepts as a set name (`output.set_name`): it becomes part of
#: every puzzle's id and a key of the app's database.
SET_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,50}$"

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
    #: Puzzles made together: their themes are embedded, assembled and scored as one
    #: window, then written out and let go, so memory stays flat however large the
    #: batch (`asyncpipe.stages.windows`). A batch no larger is made in one window.
    puzzles_per_window: int = Field(100, gt=0)

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
    #: The draw prefers categories not used in this many of the newest published batches
    #: (`paths.history`); when too few are left, the least recently used come back.
    avoid_recent_batches: int = Field(7, ge=0)

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


class Candidates(_Section):
    """Where a theme's candidate words come from (`asyncpipe.stages.candidates`)."""

    #: "members": the members of the lexicon category the theme names (Trees: oak, elm,
    #: birch), most familiar first; "neighbours": the nearest words to the theme in the
    #: vector index, the older pipeline's way.
    source: Literal["members", "neighbours"] = "members"
    #: With "members", a theme that names no category of the lexicon ("Romance"):
    #: "neighbours" searches near it as the older way did; "spare" replaces it with a
    #: spare theme. The metadata records which happened to each theme.
    not_a_category: Literal["neighbours", "spare"] = "neighbours"
    #: The word choice may use each category's N most typical members (ranked by the
    #: embedding provider), trading typicality for a clearer solution.
    selection_pool: int = Field(6, ge=2, le=50)
    #: Two categories sharing at least this share of the smaller one's members (Birds,
    #: Birds of prey) never share a puzzle; a lesser overlap only keeps the shared words
    #: out of the puzzle.
    max_category_overlap: float = Field(0.2, gt=0.0, le=1.0)


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
    #: Estimated tokens that may start in any 60 seconds (the estimate: one token per 4
    #: bytes of each text, `asyncpipe.embeddings.tokens`); None: no token limit.
    tokens_per_minute: int | None = Field(None, gt=0)
    #: Requests per Pacific-time day, counted in the store's folder (paths.cache); once
    #: spent, the run writes what it has, marked partial, and exits with code 3, and
    #: `run --resume` after midnight Pacific time continues it. None: no daily budget.
    requests_per_day: int | None = Field(None, gt=0)
    min_request_interval: float = Field(0.0, ge=0.0)
    retry_base_delay: float = Field(1.0, ge=0.0)
    max_retries: int = Field(3, ge=0)
    #: Seconds before one embedding request is given up (and retried).
    request_timeout: float = Field(60.0, gt=0.0)
    #: How the texts a run needs are embedded (`asyncpipe.embeddings.batch_jobs`):
    #: "online" by requests as the run goes; "batch" by Batch API jobs first, at half
    #: the price, then the puzzles are made from the store; "auto": batch when at least
    #: `batch_min_texts` texts are not stored yet, else online.
    mode: Literal["online", "batch", "auto"] = "online"
    batch_min_texts: int = Field(5000, ge=1)
    #: A job that FAILED, EXPIRED or was CANCELLED (and texts whose line failed for a
    #: passing reason): "resubmit" them once in a new job, or send them "online".
    batch_fallback: Literal["resubmit", "online"] = "resubmit"
    #: A job still unfinished this long after it was created is cancelled (Google
    #: expires jobs after 48 hours; its target is 24).
    batch_timeout_hours: float = Field(24.0, gt=0.0)
    #: Seconds before the first poll of a job's state; each wait after is 1.5 times
    #: longer, up to 60 s (or this, if it is longer).
    batch_poll_seconds: float = Field(10.0, gt=0.0)
    #: Texts per job: smaller jobs are stored sooner, and a failed one costs less to redo.
    #: Fewer at large dimensions, where a job's results file would pass 256 MB (6,200
    #: texts at 3072 dimensions).
    batch_job_texts: int = Field(50000, ge=1)
    #: A job whose requests take more than this many MB goes as a JSONL file through the
    #: Files API; a smaller one inline. Google takes inline requests up to 20 MB.
    batch_inline_mb: float = Field(10.0, gt=0.0, le=20.0)


class Paths(_Section):
    themes: str = "data/themes/"
    candidates: str = "data/candidates/"
    embeddings: str = "data/embeddings/"
    outputs: str = "data/outputs/"
    reports: str = "reports/"
    cache: str = "data/cache/"
    #: One line per complete batch published (`asyncpipe.io.history_file`).
    history: str = "data/history/published.jsonl"


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
    #: The puzzle app's document (`asyncpipe.io.puzzle_sets`), and the name of its set:
    #: a fixed default, so that the file depends on nothing but the params and the seed.
    puzzle_sets_file: str = "data/outputs/puzzle_sets.json"
    set_name: str = Field("asyncpipe", pattern=SET_NAME_PATTERN)


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
    #: The in-memory LRU of vectors, in MB (2^20 bytes), each entry counted with its
    #: overhead: 64 MB holds 5,382 vectors of 3072 values or 20,636 of 768; the store
    #: on disk holds every vector anyway.
    embedding_cache_mb: float = Field(64.0, ge=0.0)
    #: The older setting, in vectors: still read when `embedding_cache_mb` is not given
    #: (`cache_bytes`), so an older params file keeps its meaning.
    embedding_cache_size: int | None = Field(None, ge=0)
    #: After SIGINT or SIGTERM: seconds that requests already sent, and then the scoring
    #: of the puzzles they complete, may still take before they are cancelled.
    shutdown_grace_seconds: float = Field(10.0, ge=0.0)

    def cache_bytes(self, dimension: int, entry_overhead: int = 0) -> int:
        """The cache's bound in bytes for vectors of `dimension` float32 values:
        `embedding_cache_mb`, or room for an older file's `embedding_cache_size`
        vectors, each counting `entry_overhead` bytes besides its values."""
        if self.embedding_cache_size is not None and "embedding_cache_mb" not in (
            self.model_fields_set
        ):
            return self.embedding_cache_size * (dimension * 4 + entry_overhead)
        return int(self.embedding_cache_mb * 2**20)


class Quality(_Section):
    """What counts as a poor puzzle, and what to do about one (see asyncpipe.puzzle.scoring)."""

    #: Puzzles the embedding solver finds harder than this (0 clear .. 1 unsolvable) are poor.
    max_difficulty: float = Field(1.0, ge=0.0, le=1.0)
    #: Also treat puzzles with another split within the ambiguity margin as poor.
    reject_ambiguous: bool = False
    #: "flag": keep poor puzzles, marked; "rebuild": drop the weakest theme of each poor
    #: puzzle and assemble again from the remaining and spare themes.
    on_low_quality: Literal["flag", "rebuild"] = "flag"
    max_rebuild_rounds: int = Field(3, ge=0)
    #: Decoys per puzzle: tiles that are members of two categories of the puzzle, placed
    #: so that the solution stays unique (`asyncpipe.puzzle.decoys`). 0 makes none.
    red_herrings: int = Field(1, ge=0, le=2)
    #: The share of puzzles with one wordplay group ("FIRE ___": fly, place, man, work).
    wordplay_share: float = Field(0.25, ge=0.0, le=1.0)


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
    candidates: Candidates = Candidates()
    gemini: Gemini = Gemini()
    paths: Paths = Paths()
    output: Output = Output()
    logging: Logging = Logging()
    concurrency: Concurrency = Concurrency()
    quality: Quality = Quality()
    multiprocessing: LegacyMultiprocessing | None = None
