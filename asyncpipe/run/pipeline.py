"""The three stages of the pipeline, each runnable alone or chained by `run_all`.

    select-themes      theme source      -> data/themes/selected_themes.json
    select-candidates  selected themes   -> data/candidates/candidate_words.json
    enhance            themes+candidates -> final_puzzles.json, puzzle_metadata.json,
                                            embedding_analysis.json, embedding tables

A stage run alone reads its inputs from the files the previous stage wrote;
`run_all` hands results from stage to stage in memory and loads the vector
index once. Each stage writes its outputs atomically (`asyncpipe.io.files`).
This module joins the pieces; the work itself lives in the modules it calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from asyncpipe import __version__
from asyncpipe.embeddings.batch_jobs import BatchStatistics, JobsLeftRunning
from asyncpipe.embeddings.daily_budget import next_reset
from asyncpipe.embeddings.select import (
    ProviderChoice,
    ProviderPlan,
    build_provider,
    plan_provider,
)
from asyncpipe.errors import AsyncpipeError, ConfigError, EmbeddingError
from asyncpipe.io.documents import (
    embedding_analysis_as_written,
    final_puzzles_as_written,
    quality_report,
)
from asyncpipe.io.files import EntriesAsWritten, ensure_writable, write_json, write_text
from asyncpipe.io.history_file import append_batch, published_batch, read_history
from asyncpipe.io.kept_outputs import KeptOutputs
from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.io.puzzle_sets import puzzle_sets_document
from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from asyncpipe.io.review_batch import batch_figures
from asyncpipe.io.review_page import review_page_parts
from asyncpipe.io.stage_files import load_candidates, load_selection
from asyncpipe.io.table_manifest import forget, record, table_fingerprint, up_to_date
from asyncpipe.io.tables import write_embedding_table
from asyncpipe.io.theme_source import read_theme_source
from asyncpipe.io.vector_index import VocabularyIndex, load_index
from asyncpipe.puzzle.assembly import AssemblyResult
from asyncpipe.puzzle.failures import FailureKind, ThemeFailure, failures_json
from asyncpipe.puzzle.history import History
from asyncpipe.run.checkpoint import (
    Checkpoint,
    Recorded,
    inputs_digest,
    read_checkpoint,
    run_settings,
)
from asyncpipe.run.interrupt import Interrupted, Shutdown
from asyncpipe.run.statistics import RunStatistics
from asyncpipe.settings.params_file import LoadedParams
from asyncpipe.settings.sections import Logging, Params, PuzzleGeneration
from asyncpipe.settings.workspace import Workspace
from asyncpipe.stages.batch import embed_by_batch, run_texts
from asyncpipe.stages.candidates import (
    CandidateSearchResult,
    find_candidates,
    without_variant_duplicates,
)
from asyncpipe.stages.driver import MadePuzzles, RunContext, make_puzzles
from asyncpipe.stages.themes import ThemeSelection, select_themes

log = logging.getLogger(__name__)
_Result = TypeVar("_Result")

#: `EnhanceReport.interrupted_by` (and the metadata's) when the day's requests ran out.
DAILY_QUOTA = "daily_quota"


@dataclass
class Pipeline:
    """Everything the stages share for one invocation: settings, paths, the index."""

    loaded: LoadedParams
    workspace: Workspace
    provider_choice: ProviderChoice = "auto"
    #: The signals of this invocation (`asyncpipe.run.interrupt`); the CLI installs its handlers.
    shutdown: Shutdown = field(default_factory=Shutdown)
    #: Continue the interrupted run recorded in the workspace's checkpoint.
    resume: bool = False
    #: The live progress bar: None shows it when stderr is a terminal.
    progress_bar: bool | None = None
    #: When the batch was made (ms since the epoch) for puzzle_sets.json; None leaves it out.
    created_at: int | None = None
    #: Seconds spent per step in this invocation, for the run metadata.
    timings: dict[str, float] = field(default_factory=dict)
    #: What the Batch API jobs did, when the run embedded its texts in batch mode.
    batch_statistics: BatchStatistics | None = None
    #: A fresh run over a checkpoint with open batch jobs: when that run started, so that
    #: a job of it holding the texts this run sends is adopted (`_note_replaced_jobs`).
    adopt_jobs_since: float | None = None
    _index: VocabularyIndex | None = field(default=None, repr=False)
    _plan: ProviderPlan | None = field(default=None, repr=False)
    _recorded: Recorded | None = field(default=None, repr=False)
    _recorded_read: bool = field(default=False, repr=False)
    _history: History | None = field(default=None, repr=False)

    @property
    def params(self) -> Params:
        return self.loaded.params

    def index(self) -> VocabularyIndex:
        """The vector index, loaded on first use and kept for the later stages."""
        if self._index is None:
            with self.timed("load_index"):
                self._index = load_index(self.workspace.index_source)
            log.info(
                "Loaded vector index %s: %d words x %d dimensions in %.2fs",
                self._index.name,
                len(self._index),
                self._index.dimension,
                self.timings["load_index"],
            )
        return self._index

    def release_index(self) -> None:
        """Let the index go: no later stage of this invocation needs it (a Gemini run
        after its neighbour search). GloVe 6B's is about 120 MB of the process."""
        self._index = None

    def provider_plan(self) -> ProviderPlan:
        """Which provider the run uses; decided once, before any stage needs it. Batch
        mode without Gemini is refused here, before a stage rewrites a file."""
        if self._plan is None:
            plan = plan_provider(self.provider_choice, self.params)
            if self.params.gemini.mode == "batch" and plan.name != "gemini":
                raise ConfigError(
                    f"gemini.mode batch needs the Gemini provider, and the run uses {plan.reason}"
                )
            self._plan = plan
        return self._plan

    def recorded_run(self) -> Recorded | None:
        """The checkpoint of the run `--resume` continues, read once; None when there is none."""
        if not self._recorded_read:
            self._recorded = read_checkpoint(self.workspace.checkpoint)
            self._recorded_read = True
            if self._recorded is None:
                log.info(
                    "--resume: no interrupted run to continue (%s); starting from the beginning",
                    self.workspace.checkpoint,
                )
        return self._recorded

    def history(self) -> History:
        """The published batches (`paths.history`), read once per invocation: every stage,
        and a resumed run, sees the history as it was when the run started."""
        if self._history is None:
            self._history = read_history(self.workspace.history)
        return self._history

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class EnhanceReport:
    puzzles_requested: int
    puzzles_generated: int
    #: A signal, or the day's spent requests, cut the run short: the outputs hold the
    #: puzzles completed by then, and `run --resume` continues the run.
    partial: bool = False
    #: What cut it short: "SIGINT", "SIGTERM", or `DAILY_QUOTA` ("daily_quota": the day's
    #: requests are spent, `gemini.requests_per_day` or the API's); None when complete.
    interrupted_by: str | None = None
    #: With `DAILY_QUOTA`: the next midnight Pacific time, when the quotas reset and
    #: `run --resume` can go on.
    resume_after: datetime | None = None

    @property
    def daily_quota_spent(self) -> bool:
        return self.interrupted_by == DAILY_QUOTA


def run_select_themes(pipeline: Pipeline) -> ThemeSelection:
    params = pipeline.params
    available, source = read_theme_source(pipeline.workspace.theme_source)
    selection = select_themes(
        available,
        source,
        params.themes,
        params.puzzle_generation,
        pipeline.history(),
        wordplay_share=params.quality.wordplay_share,
    )
    write_json(pipeline.workspace.selected_themes, selection.to_json())
    log.info(
        "Selected %d themes and %d spares from %s (%d eligible) -> %s",
        len(selection.themes),
        len(selection.spare_themes),
        source,
        selection.available_count,
        pipeline.workspace.selected_themes,
    )
    return selection


def run_select_candidates(
    pipeline: Pipeline, selection: ThemeSelection | None = None
) -> CandidateSearchResult:
    params = pipeline.params
    selection = selection or load_selection(pipeline.workspace)
    with pipeline.timed("select_candidates"):
        result = find_candidates(
            list(selection.all_themes),
            params.candidates,
            params.vector_search,
            params.puzzle_generation,
            load_lexicon(),
            pipeline.index,
            _embeddable(pipeline),
        )
    document = {
        # Each theme's entry made as it is written: at 50,000 themes the whole object
        # was 130 MB at once (`EntriesAsWritten`).
        "candidates": EntriesAsWritten(
            len(result.candidates),
            lambda: ((theme, found.to_json()) for theme, found in result.candidates.items()),
        ),
        "metadata": {
            "candidate_source": params.candidates.source,
            "not_a_category": params.candidates.not_a_category,
            # members, neighbours, or replaced (by a spare), for every theme searched.
            "theme_sources": result.sources(),
            **_neighbour_search_metadata(pipeline, result),
            "candidate_words_per_theme": params.puzzle_generation.candidate_words_per_theme,
            "themes_searched": len(selection.all_themes),
            "failed_themes": {
                theme: failure.reason for theme, failure in result.failed_themes.items()
            },
            "failed_theme_kinds": {
                theme: failure.kind.value for theme, failure in result.failed_themes.items()
            },
        },
    }
    write_json(pipeline.workspace.candidate_words, document)
    log.info(
        "Found candidates for %d of %d themes in %.2fs -> %s",
        sum(1 for found in result.candidates.values() if found.words),
        len(selection.all_themes),
        pipeline.timings["select_candidates"],
        pipeline.workspace.candidate_words,
    )
    for theme, failure in result.failed_themes.items():
        log.warning("Theme %r has no candidates: %s", theme, failure.reason)
    return result


def _embeddable(pipeline: Pipeline) -> Callable[[str], bool] | None:
    """The words the offline provider can embed, when the run embeds from an index that
    may lack members (an older pipeline's); None when every member is embeddable: Gemini
    embeds any text, and the shipped lexicon holds only words of the bundled GloVe."""
    if pipeline.provider_plan().name != "glove" or pipeline.workspace.index_source is None:
        return None
    index = pipeline.index()
    return lambda word: index.row_of(word) is not None


def _neighbour_search_metadata(pipeline: Pipeline, result: CandidateSearchResult) -> dict[str, Any]:
    """The neighbour search's settings, when some theme was searched for neighbours."""
    if result.search_pool_size is None:
        return {}
    index = pipeline.index()
    search = pipeline.params.vector_search
    return {
        "index": index.name,
        "index_metadata": index.metadata,
        "search_pool_size": result.search_pool_size,
        "vocabulary_size": search.vocabulary_size,
        "similarity_metric": search.similarity_metric,
        "max_search_candidates": search.max_search_candidates,
        "min_similarity_threshold": pipeline.params.puzzle_generation.min_similarity_threshold,
        "use_lemmatized": search.use_lemmatized,
    }


def run_enhance(
    pipeline: Pipeline,
    selection: ThemeSelection | None = None,
    candidates: CandidateSearchResult | None = None,
) -> EnhanceReport:
    params = pipeline.params
    workspace = pipeline.workspace
    ensure_writable(workspace.enhance_output_folders())
    selection = selection or load_selection(workspace)
    candidates, dropped = without_variant_duplicates(
        candidates or load_candidates(workspace), params.vector_search.use_lemmatized
    )
    if dropped:
        log.info(
            "Dropped %d candidates that are case or plural variants of an earlier one "
            "(vector_search.use_lemmatized), before embedding them",
            dropped,
        )
    plan = pipeline.provider_plan()
    provider = build_provider(plan, params, pipeline.index)
    if plan.name != "glove":
        pipeline.release_index()  # the neighbour search was its last use
    log.info("Embedding provider: %s", plan.reason)
    provider_json = {
        "name": provider.info.name,
        "model": provider.info.model,
        "dimension": provider.info.dimension,
        "task_type": provider.info.task_type,
        "chosen_because": plan.reason,
    }

    usable, unusable = _usable_themes(selection, candidates, params.puzzle_generation)
    history = pipeline.history().memory(selection.all_themes, params.themes.avoid_recent_batches)
    checkpoint, recorded = _open_checkpoint(pipeline, selection, candidates)
    try:
        # From here a first signal winds the run down instead of ending it: the
        # work in flight finishes, and what was completed is written.
        with pipeline.shutdown.deferring():
            refused = _embed_by_batch(pipeline, selection, usable, checkpoint, recorded)
            run = RunContext(
                workspace.cache_dir,
                checkpoint,
                recorded,
                pipeline.shutdown,
                pipeline.progress_bar,
                refused,
            )
            # Each window's rows and records wait here for the outputs, on disk.
            with closing(
                KeptOutputs(
                    workspace.puzzle_embeddings_table,
                    workspace.embedding_cache_table,
                    params.puzzle_generation.random_seed,
                )
            ) as kept:
                with pipeline.timed("embed_and_assemble"):
                    made = _run_async(
                        make_puzzles(
                            params,
                            selection,
                            usable,
                            provider,
                            run,
                            candidates.categories,
                            history,
                            kept,
                        )
                    )
                report = _write_outputs(
                    pipeline, selection, made, kept, unusable, provider_json, candidates
                )
    except BaseException:
        checkpoint.close()  # kept: `--resume` goes on from it
        raise
    if report.partial:
        checkpoint.close()
    else:
        checkpoint.discard()
        _record_batch(pipeline, made)
    return report


def _embed_by_batch(
    pipeline: Pipeline,
    selection: ThemeSelection,
    usable: Mapping[str, Sequence[str]],
    checkpoint: Checkpoint,
    recorded: Recorded | None,
) -> Mapping[str, EmbeddingError]:
    """In batch mode (`gemini.mode`), the run's missing texts embedded by Batch API jobs
    first; the texts the online rounds must then not request, with their errors."""
    params = pipeline.params
    plan = pipeline.provider_plan()
    if params.gemini.mode == "online" and not (recorded and recorded.open_batch_jobs):
        return {}  # unless a batch run resumed online: its open jobs are paid for
    if plan.name != "gemini" or plan.api_key is None:
        return {}  # batch mode without Gemini was refused with the plan
    texts = run_texts(selection.all_themes, usable)
    with pipeline.timed("batch_jobs"), _jobs_left_running_as_interrupted():
        outcome = _run_async(
            embed_by_batch(
                params,
                plan.api_key,
                texts,
                pipeline.workspace.cache_dir,
                checkpoint,
                recorded,
                pipeline.shutdown,
                pipeline.progress_bar,
                recorded.started_seconds if recorded is not None else pipeline.adopt_jobs_since,
            )
        )
    if outcome is None:
        return {}
    pipeline.batch_statistics = outcome.statistics
    return outcome.refused


def _note_replaced_jobs(pipeline: Pipeline) -> None:
    """A run started afresh over a checkpoint that records open batch jobs: a job with
    the texts this run sends again is adopted by its label (`batch_jobs.job_label`), not
    paid for twice; the others are named, as the new checkpoint will not list them."""
    try:
        previous = read_checkpoint(pipeline.workspace.checkpoint)
    except AsyncpipeError:
        return  # unreadable: nothing to adopt from, and the run replaces it anyway
    if previous is None or not previous.open_batch_jobs:
        return
    open_jobs = [job.name for job in previous.open_batch_jobs]
    pipeline.adopt_jobs_since = previous.started_seconds
    log.warning(
        "The run started afresh replaces a checkpoint with %d batch jobs still open (%s): "
        "in batch mode a job holding texts this run needs is waited on, not made again; "
        "the others are no longer listed by `asyncpipe jobs`",
        len(open_jobs),
        ", ".join(open_jobs),
    )


@contextmanager
def _jobs_left_running_as_interrupted() -> Iterator[None]:
    """A signal while batch jobs were waited on ends the command as a signal does."""
    try:
        yield
    except JobsLeftRunning as stopped:
        raise Interrupted(stopped.signal_number) from None


def _record_batch(pipeline: Pipeline, made: MadePuzzles) -> None:
    """Append the complete batch to the history, after its outputs and the checkpoint's end.

    Last of all: a failure before it leaves outputs that a rerun makes again byte for
    byte (same params, seed and history) and then records; a partial batch is never
    recorded, so `--resume` reads the history its interrupted run read.
    """
    if not made.assembly.puzzles:
        return
    workspace = pipeline.workspace
    batch = published_batch(
        workspace.final_puzzles.read_bytes(),
        [(group.theme, group.words) for puzzle in made.assembly.puzzles for group in puzzle.groups],
        pipeline.params.output.set_name,
        pipeline.params.puzzle_generation.random_seed,
    )
    if append_batch(workspace.history, batch):
        log.info("Recorded the batch (%s) in the history -> %s", batch.batch, workspace.history)


def _open_checkpoint(
    pipeline: Pipeline, selection: ThemeSelection, candidates: CandidateSearchResult
) -> tuple[Checkpoint, Recorded | None]:
    """With --resume, the interrupted run's checkpoint (checked); else a fresh one."""
    path = pipeline.workspace.checkpoint
    settings = run_settings(pipeline.params, pipeline.provider_plan().name)
    inputs = inputs_digest(
        selection,
        {theme: found.words for theme, found in candidates.candidates.items()},
        pipeline.history().digest,
    )
    recorded = pipeline.recorded_run() if pipeline.resume else None
    if recorded is None:
        _note_replaced_jobs(pipeline)
        return Checkpoint.start(path, settings, inputs), None
    recorded.refuse_unless_same_settings(path, settings)
    recorded.refuse_unless_same_inputs(path, inputs)
    log.info(
        "Resuming the run started %s: %d themes finished and %d puzzles scored are not redone",
        recorded.started_at,
        len(recorded.themes),
        len(recorded.scores),
    )
    return Checkpoint.resume(path, recorded), recorded


def _write_outputs(
    pipeline: Pipeline,
    selection: ThemeSelection,
    made: MadePuzzles,
    kept: KeptOutputs,
    unusable: Mapping[str, ThemeFailure],
    provider_json: dict[str, Any],
    candidates: CandidateSearchResult,
) -> EnhanceReport:
    params = pipeline.params
    workspace = pipeline.workspace
    assembly, scores = made.assembly, made.scores
    statistics = made.statistics
    failed_themes = {**unusable, **made.failed_themes}
    report = _report(pipeline, made)
    if report.partial and not assembly.puzzles:
        log.warning(
            "%s before any puzzle was completed: the outputs are left as they were; "
            "`run --resume`%s continues the run",
            _what_interrupted(report),
            _when_to_resume(report),
        )
        return report

    # The app's files (puzzle_sets.json, final_puzzles.json), then the metadata, go last:
    # a failure while writing the tables leaves the previous batch's puzzles and metadata
    # together, never a mix.
    with pipeline.timed("write_outputs"):
        _write_tables(pipeline, made, kept, provider_json, report.partial)
        analysis = embedding_analysis_as_written(kept.themes, assembly.puzzles, provider_json)
        write_json(workspace.embedding_analysis, analysis)
        quality = quality_report(scores, made.below_bar, statistics.puzzles_rebuilt, params.quality)
        write_json(workspace.puzzle_quality, quality)
        figures = batch_figures(
            params.puzzle_generation.random_seed,
            report.puzzles_requested,
            statistics.puzzles_rebuilt,
            failed_themes,
            candidates.sources(),
        )
        write_text(workspace.review_page, review_page_parts(kept.reviewed, figures))
        write_json(workspace.puzzle_sets, _puzzle_sets(pipeline, made, provider_json))
        write_json(
            workspace.final_puzzles,
            final_puzzles_as_written(
                assembly.puzzles,
                params.output.include_similarity_scores,
                scores,
                made.below_bar,
            ),
        )
    # A partial batch is always marked, even where metadata is otherwise not wanted.
    if params.output.include_metadata or report.partial:
        metadata = _metadata_document(
            pipeline, selection, assembly, failed_themes, statistics, provider_json, report
        )
        if pipeline.batch_statistics is not None:
            metadata["batch_jobs"] = pipeline.batch_statistics.to_json()
        metadata["candidates"] = {
            "source": params.candidates.source,
            "not_a_category": params.candidates.not_a_category,
            # For every theme drawn: members, neighbours, or replaced (by a spare).
            "theme_sources": candidates.sources(),
            # For the member themes: the category each one named.
            "categories": candidates.categories,
        }
        write_json(workspace.puzzle_metadata, metadata)
    if report.partial:
        unfinished = (
            "the rebuild of the puzzles below the quality bar was cut short"
            if report.puzzles_generated == report.puzzles_requested
            else "the rest were not completed"
        )
        log.warning(
            "%s: %d of %d puzzles were completed and written (%s), marked partial in %s; "
            "`run --resume`%s finishes the run without redoing them",
            _what_interrupted(report),
            report.puzzles_generated,
            report.puzzles_requested,
            unfinished,
            workspace.puzzle_metadata,
            _when_to_resume(report),
        )
        return report
    log.info(
        "Generated %d of %d puzzles -> %s",
        report.puzzles_generated,
        report.puzzles_requested,
        workspace.final_puzzles,
    )
    _log_details(params.logging, failed_themes, assembly, analysis)
    _warn_embedding_failures(failed_themes, workspace)
    log.info(
        "Quality: the embedding solver recovers %d of %d puzzles; %d ambiguous, "
        "%d with a word closer to another theme, %d with look-alike words -> %s",
        quality["solver_recovers_intended_grouping"],
        quality["puzzles_scored"],
        quality["ambiguous"],
        quality["with_misplaced_words"],
        quality["with_textual_look_alikes"],
        workspace.puzzle_quality,
    )
    return report


def _report(pipeline: Pipeline, made: MadePuzzles) -> EnhanceReport:
    requested = pipeline.params.puzzle_generation.total_puzzle_count
    generated = len(made.assembly.puzzles)
    if not made.partial:
        return EnhanceReport(requested, generated)
    # A signal that came as well is the user's word, and decides the exit code.
    if pipeline.shutdown.signal_name is not None or made.quota_spent is None:
        return EnhanceReport(requested, generated, True, pipeline.shutdown.signal_name)
    resume_after = next_reset(datetime.now(UTC))
    return EnhanceReport(requested, generated, True, DAILY_QUOTA, resume_after)


def _what_interrupted(report: EnhanceReport) -> str:
    if report.daily_quota_spent:
        return "The day's embedding requests are spent"
    return f"Interrupted by {report.interrupted_by}"


def _when_to_resume(report: EnhanceReport) -> str:
    """When `run --resume` can succeed, as the log line says it: at once, or after midnight."""
    if report.resume_after is None:
        return ""
    reset = report.resume_after
    return (
        f" after midnight Pacific time ({reset.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{reset.astimezone(UTC).strftime('%H:%M UTC')})"
    )


def _puzzle_sets(
    pipeline: Pipeline, made: MadePuzzles, provider_json: dict[str, Any]
) -> dict[str, Any]:
    """The app's document, checked against the app's rules before it is written: a
    broken rule is a bug here, and the previous file is better than a wrong one."""
    params = pipeline.params
    document = puzzle_sets_document(
        made.assembly.puzzles,
        made.scores,
        params.output.set_name,
        params.puzzle_generation.random_seed,
        pipeline.created_at,
        {
            "provider": provider_json["name"],
            "model": provider_json["model"],
            "dimension": provider_json["dimension"],
            "randomSeed": params.puzzle_generation.random_seed,
            "puzzlesRequested": params.puzzle_generation.total_puzzle_count,
            "partial": made.partial,
        },
    )
    problems = validate_puzzle_sets(document)
    if problems:
        raise RuntimeError(f"puzzle_sets.json breaks the app's rules: {'; '.join(problems)}")
    return document


def _usable_themes(
    selection: ThemeSelection, candidates: CandidateSearchResult, generation: PuzzleGeneration
) -> tuple[dict[str, tuple[str, ...]], dict[str, ThemeFailure]]:
    """Themes with enough candidates to fill a group, and why the others are out."""
    failed = dict(candidates.failed_themes)
    usable: dict[str, tuple[str, ...]] = {}
    for theme in selection.all_themes:
        found = candidates.candidates.get(theme)
        if found is None:
            failed.setdefault(
                theme,
                ThemeFailure(
                    FailureKind.NO_CANDIDATES, "no candidates were searched for this theme"
                ),
            )
        elif len(found.words) < generation.words_per_theme:
            failed.setdefault(
                theme,
                ThemeFailure(
                    FailureKind.TOO_FEW_CANDIDATES,
                    f"only {len(found.words)} candidate words, "
                    f"a group needs {generation.words_per_theme}",
                ),
            )
        else:
            usable[theme] = found.words
    return usable, failed


def _write_tables(
    pipeline: Pipeline,
    made: MadePuzzles,
    kept: KeptOutputs,
    provider_json: dict[str, Any],
    partial: bool,
) -> None:
    """The puzzles' vectors, and every embedded text's; after a signal only the former.

    The table of every text is by far the largest output (hundreds of MB at 3072
    dimensions) and holds nothing the store does not: an interrupted run, which
    should exit promptly, leaves it to the resumed one, and a run that would write
    the same table again leaves it as it is (`asyncpipe.io.table_manifest`).
    """
    output = pipeline.params.output
    dimension = provider_json["dimension"]
    write_embedding_table(
        pipeline.workspace.puzzle_embeddings_table,
        kept.puzzle_rows,
        dimension,
        output.embedding_table_format,
        output.csv_precision,
    )
    if partial:
        return
    table = pipeline.workspace.embedding_cache_table
    settings = {
        "format": output.embedding_table_format,
        "precision": output.csv_precision,
        "provider": [provider_json[key] for key in ("name", "model", "dimension", "task_type")],
    }
    fingerprint = table_fingerprint(kept.themes, settings)
    store = made.statistics.engine.store
    if (store is None or store.written == 0) and up_to_date(table, fingerprint):
        log.info("%s is up to date (the same texts and vectors): not written again", table)
        return
    forget(table)
    write_embedding_table(
        table,
        kept.theme_rows,
        dimension,
        output.embedding_table_format,
        output.csv_precision,
    )
    record(table, fingerprint)


def _log_details(
    settings: Logging,
    failed_themes: Mapping[str, ThemeFailure],
    assembly: AssemblyResult,
    analysis: dict[str, Any],
) -> None:
    if settings.detailed_output:
        for theme, failure in failed_themes.items():
            log.info("Theme %r replaced: %s", theme, failure.reason)
    elif failed_themes:
        log.info("%d themes replaced (reasons in the metadata)", len(failed_themes))
    for name, reason in assembly.failed_puzzles.items():
        log.warning("%s not generated: %s", name, reason)
    if settings.log_embedding_stats:
        for label, key in (
            ("candidates", "candidate_similarity"),
            ("puzzle words", "puzzle_word_similarity"),
        ):
            summary = analysis[key]
            if summary.get("count"):
                log.info(
                    "Similarity to theme, %s: mean %.3f, median %.3f, min %.3f (%d words)",
                    label,
                    summary["mean"],
                    summary["median"],
                    summary["min"],
                    summary["count"],
                )


def _warn_embedding_failures(
    failed_themes: Mapping[str, ThemeFailure], workspace: Workspace
) -> None:
    """One warning when themes could not be embedded (the API failing, garbage answers)."""
    reasons = [failure.reason for failure in failed_themes.values() if failure.kind.embedding]
    if reasons:
        reason, count = Counter(reasons).most_common(1)[0]
        log.warning(
            "%d themes could not be embedded (%d of them: %s); every reason is in %s",
            len(reasons),
            count,
            reason,
            workspace.puzzle_metadata,
        )


def run_all(pipeline: Pipeline) -> EnhanceReport:
    pipeline.provider_plan()  # a missing key stops the run here, before any stage
    ensure_writable(pipeline.workspace.output_folders())  # so does an unwritable folder
    if pipeline.resume:
        # A checkpoint from other settings is refused now, before any stage rewrites a file.
        recorded = pipeline.recorded_run()
        if recorded is not None:
            recorded.refuse_unless_same_settings(
                pipeline.workspace.checkpoint,
                run_settings(pipeline.params, pipeline.provider_plan().name),
            )
    selection = run_select_themes(pipeline)
    candidates = run_select_candidates(pipeline, selection)
    return run_enhance(pipeline, selection, candidates)


def _run_async(work: Coroutine[Any, Any, _Result]) -> _Result:
    """asyncio.run, with task-group failures unwrapped to the asyncpipe error behind them.

    A fatal error in one theme task reaches us wrapped in ExceptionGroups (one per
    task group it crossed); the command line wants the error itself, to print it
    as one line.
    """
    try:
        return asyncio.run(work)
    except BaseExceptionGroup as group:
        cause = _first_leaf(group, AsyncpipeError) or _first_leaf(group, KeyboardInterrupt)
        if cause is None:
            raise
        raise cause from None


def _first_leaf(group: BaseExceptionGroup, kind: type[BaseException]) -> BaseException | None:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found = _first_leaf(error, kind)
            if found is not None:
                return found
        elif isinstance(error, kind):
            return error
    return None


def _metadata_document(
    pipeline: Pipeline,
    selection: ThemeSelection,
    assembly: AssemblyResult,
    failed_themes: Mapping[str, ThemeFailure],
    statistics: RunStatistics,
    provider_json: dict[str, Any],
    report: EnhanceReport,
) -> dict[str, Any]:
    params = pipeline.params
    used = {theme for puzzle in assembly.puzzles for theme in puzzle.themes}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "partial": report.partial,
        "interrupted_by": report.interrupted_by,
        **(
            {"resume_after": report.resume_after.isoformat()}
            if report.resume_after is not None
            else {}
        ),
        "resumed": pipeline.resume and (statistics.themes_resumed > 0 or _reattached(pipeline)),
        "asyncpipe_version": __version__,
        "params_source": pipeline.loaded.source,
        "random_seed": params.puzzle_generation.random_seed,
        "counts": {
            "puzzles_requested": params.puzzle_generation.total_puzzle_count,
            "puzzles_generated": len(assembly.puzzles),
            "themes_selected": len(selection.themes),
            "spare_themes": len(selection.spare_themes),
            "themes_used": len(used),
            "spare_themes_used": len(used - set(selection.themes)),
            "themes_failed": len(failed_themes),
        },
        "failed_themes": failures_json(failed_themes),
        "history": _history_json(pipeline, used),
        "failed_puzzles": assembly.failed_puzzles,
        # Each red herring: the tile, its category, and the one it pretends to.
        "decoys": {
            "red_herrings": params.quality.red_herrings,
            "puzzles_with_decoys": sum(1 for puzzle in assembly.puzzles if puzzle.decoys),
            "placed": {
                f"puzzle_{number}": [decoy.to_json() for decoy in puzzle.decoys]
                for number, puzzle in enumerate(assembly.puzzles, start=1)
                if puzzle.decoys
            },
        },
        "unused_themes": list(assembly.unused_themes),
        "provider": provider_json,
        "timing_seconds": dict(pipeline.timings),
        "run_statistics": statistics.to_json(),
        "puzzle_generation": params.puzzle_generation.model_dump(),
    }


def _reattached(pipeline: Pipeline) -> bool:
    """The run waited on batch jobs an interrupted run had created."""
    figures = pipeline.batch_statistics
    return figures is not None and figures.jobs_reattached > 0


def _history_json(pipeline: Pipeline, used: set[str]) -> dict[str, Any]:
    """How far the batch reuses the published categories (`paths.history`)."""
    history = pipeline.history()
    window = pipeline.params.themes.avoid_recent_batches
    return {
        "file": str(pipeline.workspace.history),
        "batches_before": len(history.batches),
        "avoid_recent_batches": window,
        # Categories of this batch also used in the last `window` batches: they came
        # back because too few others were left, with mostly new tiles.
        "categories_reused": sum(history.is_recent(theme, window) for theme in used),
        "categories_used_before": sum(history.batches_since(theme) is not None for theme in used),
    }
