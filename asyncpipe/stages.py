"""The three stages of the pipeline, each runnable alone or chained by `run_all`.

    select-themes      theme source      -> data/themes/selected_themes.json
    select-candidates  selected themes   -> data/candidates/candidate_words.json
    enhance            themes+candidates -> final_puzzles.json, puzzle_metadata.json,
                                            embedding_analysis.json, embedding tables

A stage run alone reads its inputs from the files the previous stage wrote;
`run_all` hands results from stage to stage in memory and loads the vector
index once. Each stage writes its outputs atomically (`asyncpipe.outputs`).
This module joins the pieces; the work itself lives in the modules it calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from asyncpipe import __version__
from asyncpipe.assembly import AssemblyResult, assemble_puzzles
from asyncpipe.candidates import CandidateSearch, CandidateSearchResult, ThemeCandidates
from asyncpipe.config import LoadedParams, Logging, Params, PuzzleGeneration, Quality
from asyncpipe.documents import (
    all_embeddings_blocks,
    embedding_analysis_document,
    final_puzzles_document,
    puzzle_embeddings_blocks,
)
from asyncpipe.embeddings.provider import EmbeddingProvider
from asyncpipe.embeddings.select import (
    ProviderChoice,
    ProviderPlan,
    build_provider,
    plan_provider,
)
from asyncpipe.embeddings.session import open_engine
from asyncpipe.enhance import EnhanceOutcome, embed_and_rank, theme_workers
from asyncpipe.errors import AsyncpipeError, InputError
from asyncpipe.loop_lag import LoopLagMonitor
from asyncpipe.outputs import read_json, write_embedding_table, write_json
from asyncpipe.progress import ProgressReporter
from asyncpipe.quality import closer_elsewhere_in, puzzle_arrays, quality_report
from asyncpipe.scoring import PuzzleScore
from asyncpipe.scoring_pool import ScoringPool
from asyncpipe.themes import ThemeSelection, read_theme_source, select_themes
from asyncpipe.vocabulary import VocabularyIndex, load_index
from asyncpipe.workspace import Workspace

log = logging.getLogger("asyncpipe")
_Result = TypeVar("_Result")


@dataclass
class Pipeline:
    """Everything the stages share for one invocation: settings, paths, the index."""

    loaded: LoadedParams
    workspace: Workspace
    provider_choice: ProviderChoice = "auto"
    #: Seconds spent per step in this invocation, for the run metadata.
    timings: dict[str, float] = field(default_factory=dict)
    _index: VocabularyIndex | None = field(default=None, repr=False)
    _plan: ProviderPlan | None = field(default=None, repr=False)

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

    def provider_plan(self) -> ProviderPlan:
        """Which provider the run uses; decided once, before any stage needs it."""
        if self._plan is None:
            self._plan = plan_provider(self.provider_choice, self.params)
        return self._plan

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


def run_select_themes(pipeline: Pipeline) -> ThemeSelection:
    params = pipeline.params
    available, source = read_theme_source(pipeline.workspace.theme_source)
    selection = select_themes(available, source, params.themes, params.puzzle_generation)
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
    selection = selection or _load_selection(pipeline.workspace)
    index = pipeline.index()
    with pipeline.timed("select_candidates"):
        search = CandidateSearch(index, params.vector_search)
        result = search.search(list(selection.all_themes), params.puzzle_generation)
    document = {
        "candidates": {theme: found.to_json() for theme, found in result.candidates.items()},
        "metadata": {
            "index": index.name,
            "index_metadata": index.metadata,
            "search_pool_size": search.pool_size,
            "vocabulary_size": params.vector_search.vocabulary_size,
            "similarity_metric": params.vector_search.similarity_metric,
            "max_search_candidates": params.vector_search.max_search_candidates,
            "candidate_words_per_theme": params.puzzle_generation.candidate_words_per_theme,
            "min_similarity_threshold": params.puzzle_generation.min_similarity_threshold,
            "use_lemmatized": params.vector_search.use_lemmatized,
            "themes_searched": len(selection.all_themes),
            "failed_themes": result.failed_themes,
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
    for theme, reason in result.failed_themes.items():
        log.warning("Theme %r has no candidates: %s", theme, reason)
    return result


def run_enhance(
    pipeline: Pipeline,
    selection: ThemeSelection | None = None,
    candidates: CandidateSearchResult | None = None,
) -> EnhanceReport:
    params = pipeline.params
    workspace = pipeline.workspace
    selection = selection or _load_selection(workspace)
    candidates = candidates or _load_candidates(workspace)
    plan = pipeline.provider_plan()
    provider = build_provider(plan, params, pipeline.index())
    log.info("Embedding provider: %s", plan.reason)
    provider_json = {
        "name": provider.info.name,
        "model": provider.info.model,
        "dimension": provider.info.dimension,
        "task_type": provider.info.task_type,
        "chosen_because": plan.reason,
    }

    usable, failed_themes = _usable_themes(selection, candidates, params.puzzle_generation)
    with pipeline.timed("embed_and_assemble"):
        assembled = _run_async(_embed_and_assemble(pipeline, selection, usable, provider))
    outcome, assembly, scores = assembled.outcome, assembled.assembly, assembled.scores
    statistics = assembled.statistics
    failed_themes.update(outcome.failed_themes)
    failed_themes.update(assembly.failed_themes)

    with pipeline.timed("write_outputs"):
        write_json(
            workspace.final_puzzles,
            final_puzzles_document(
                assembly.puzzles,
                params.output.include_similarity_scores,
                scores,
                assembled.below_bar,
            ),
        )
        _write_tables(pipeline, outcome, assembly, provider.info.dimension)
        analysis = embedding_analysis_document(outcome.embedded, assembly.puzzles, provider_json)
        write_json(workspace.embedding_analysis, analysis)
        quality = quality_report(
            scores, assembled.below_bar, statistics["puzzles_rebuilt"], params.quality
        )
        write_json(workspace.puzzle_quality, quality)
    if params.output.include_metadata:
        metadata = _metadata_document(
            pipeline, selection, assembly, failed_themes, statistics, provider_json
        )
        write_json(workspace.puzzle_metadata, metadata)
    report = EnhanceReport(params.puzzle_generation.total_puzzle_count, len(assembly.puzzles))
    log.info(
        "Generated %d of %d puzzles -> %s",
        report.puzzles_generated,
        report.puzzles_requested,
        workspace.final_puzzles,
    )
    _log_details(params.logging, failed_themes, assembly, analysis)
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


def _usable_themes(
    selection: ThemeSelection, candidates: CandidateSearchResult, generation: PuzzleGeneration
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Themes with enough candidates to fill a group, and why the others are out."""
    failed = dict(candidates.failed_themes)
    usable: dict[str, tuple[str, ...]] = {}
    for theme in selection.all_themes:
        found = candidates.candidates.get(theme)
        if found is None:
            failed.setdefault(theme, "no candidates were searched for this theme")
        elif len(found.words) < generation.words_per_theme:
            failed.setdefault(
                theme,
                f"only {len(found.words)} candidate words, "
                f"a group needs {generation.words_per_theme}",
            )
        else:
            usable[theme] = found.words
    return usable, failed


def _write_tables(
    pipeline: Pipeline, outcome: EnhanceOutcome, assembly: AssemblyResult, dimension: int
) -> None:
    output = pipeline.params.output
    tables = (
        (pipeline.workspace.embedding_cache_table, all_embeddings_blocks(outcome.embedded)),
        (
            pipeline.workspace.puzzle_embeddings_table,
            puzzle_embeddings_blocks(assembly.puzzles, outcome.embedded),
        ),
    )
    for path, blocks in tables:
        write_embedding_table(
            path, blocks, dimension, output.embedding_table_format, output.csv_precision
        )


def _log_details(
    settings: Logging,
    failed_themes: dict[str, str],
    assembly: AssemblyResult,
    analysis: dict[str, Any],
) -> None:
    if settings.detailed_output:
        for theme, reason in failed_themes.items():
            log.info("Theme %r replaced: %s", theme, reason)
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


def run_all(pipeline: Pipeline) -> EnhanceReport:
    pipeline.provider_plan()  # a missing key stops the run here, before any stage
    selection = run_select_themes(pipeline)
    candidates = run_select_candidates(pipeline, selection)
    return run_enhance(pipeline, selection, candidates)


@dataclass(repr=False)  # asyncio.run formats its result's repr on Python 3.11: keep it cheap
class _Assembled:
    outcome: EnhanceOutcome
    assembly: AssemblyResult
    scores: list[PuzzleScore]
    below_bar: list[bool]
    statistics: dict[str, Any]


async def _embed_and_assemble(
    pipeline: Pipeline,
    selection: ThemeSelection,
    usable: dict[str, tuple[str, ...]],
    provider: EmbeddingProvider,
) -> _Assembled:
    """Embed, assemble and score; embed spares only as far as failures require.

    Spares cost API calls with a paid provider, so they are embedded in rounds,
    each just large enough to cover the themes still missing. With
    `quality.on_low_quality: rebuild`, each poor puzzle gives up its weakest theme
    and the batch is assembled again. The assembly always sees themes in draw
    order, so the result depends on neither the rounds nor timing.
    """
    params = pipeline.params
    generation = params.puzzle_generation
    bar = params.quality
    ordered = [theme for theme in selection.all_themes if theme in usable]
    primary = set(selection.themes)
    queue = [theme for theme in ordered if theme in primary]
    spares = [theme for theme in ordered if theme not in primary]
    mean_texts = 1 + sum(len(usable[theme]) for theme in ordered) / max(1, len(ordered))
    workers = theme_workers(
        params.concurrency.max_concurrent_requests, params.concurrency.batch_size, mean_texts
    )
    outcome = EnhanceOutcome()
    rejected: set[str] = set()
    scored: dict[tuple[str, ...], PuzzleScore] = {}
    rebuilt = 0
    scoring_seconds = 0.0
    async with (
        # Opened first: the workers start while the themes are embedded.
        ScoringPool(
            params.concurrency.scoring_workers,
            generation.themes_per_puzzle,
            generation.words_per_theme,
        ) as pool,
        open_engine(provider, params, pipeline.workspace.cache_dir) as engine,
        ProgressReporter(len(queue), params.logging.progress_interval) as progress,
        LoopLagMonitor() as lag,
    ):
        for round_number in range(bar.max_rebuild_rounds + 1):
            while True:
                if queue:
                    part = await embed_and_rank(
                        [(theme, usable[theme]) for theme in queue], engine, workers, progress
                    )
                    outcome.embedded.update(part.embedded)
                    outcome.failed_themes.update(part.failed_themes)
                    outcome.seconds += part.seconds
                ranked = [
                    outcome.embedded[theme].ranked
                    for theme in ordered
                    if theme in outcome.embedded and theme not in rejected
                ]
                assembly = assemble_puzzles(
                    ranked,
                    generation.total_puzzle_count,
                    generation.themes_per_puzzle,
                    generation.words_per_theme,
                    closer_elsewhere=closer_elsewhere_in(outcome.embedded),
                )
                missing = generation.total_puzzle_count - len(assembly.puzzles)
                if missing == 0 or not spares:
                    break
                shortfall = missing * generation.themes_per_puzzle - len(assembly.unused_themes)
                take = max(shortfall, generation.themes_per_puzzle)
                queue, spares = spares[:take], spares[take:]
                progress.add_total(len(queue))
                log.info("Embedding %d spare themes to replace failed ones", len(queue))
            queue = []

            started = time.perf_counter()
            fresh = [puzzle for puzzle in assembly.puzzles if tuple(puzzle.words) not in scored]
            results = await asyncio.gather(
                *(
                    pool.score(puzzle.words, *puzzle_arrays(puzzle, outcome.embedded))
                    for puzzle in fresh
                )
            )
            scored.update(zip((tuple(p.words) for p in fresh), results, strict=True))
            scoring_seconds += time.perf_counter() - started
            scores = [scored[tuple(puzzle.words)] for puzzle in assembly.puzzles]
            below_bar = [_below_bar(score, bar) for score in scores]
            poor = [index for index, below in enumerate(below_bar) if below]
            if (
                bar.on_low_quality != "rebuild"
                or not poor
                or round_number == bar.max_rebuild_rounds
            ):
                break
            for index in poor:
                puzzle, score = assembly.puzzles[index], scores[index]
                weakest = min(range(len(puzzle.groups)), key=lambda g: score.coherence[g])
                theme = puzzle.groups[weakest].theme
                rejected.add(theme)
                outcome.failed_themes[theme] = (
                    f"dropped to rebuild a puzzle below the quality bar (difficulty "
                    f"{score.difficulty:.2f}{', ambiguous' if score.ambiguous else ''}); "
                    "it was that puzzle's least coherent group"
                )
            rebuilt += len(poor)
            log.info("Rebuilding %d puzzles below the quality bar", len(poor))

        pool_statistics = pool.statistics()
        statistics = {
            "themes_embedded": len(outcome.embedded),
            "themes_failed_embedding": len(outcome.failed_themes),
            "embedding_seconds": round(outcome.seconds, 3),
            **engine.summary(),
            "scoring_workers": pool_statistics.workers,
            "puzzles_scored": pool_statistics.puzzles_scored,
            "scoring_seconds": round(scoring_seconds, 3),
            "puzzles_rebuilt": rebuilt,
            **lag.summary(),
        }
    _log_statistics(statistics)
    return _Assembled(outcome, assembly, scores, below_bar, statistics)


def _below_bar(score: PuzzleScore, bar: Quality) -> bool:
    return score.difficulty > bar.max_difficulty or (bar.reject_ambiguous and score.ambiguous)


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


def _log_statistics(statistics: dict[str, Any]) -> None:
    log.info(
        "Embedding summary: %d requests, %d texts sent, cache hits %d memory / %d disk, "
        "%d in-flight duplicates, %d retries, %d throttled (429), latency p50 %s s / p95 %s s, "
        "%.2f s waiting on the rate limiter, %.2f s wall, event-loop lag p99 %s ms",
        statistics["requests"],
        statistics["texts_requested"],
        statistics["cache_hits_memory"],
        statistics["cache_hits_disk"],
        statistics["in_flight_dedup_hits"],
        statistics["retries"],
        statistics["throttled_429"],
        statistics["latency_p50_seconds"],
        statistics["latency_p95_seconds"],
        statistics["limiter_wait_seconds"],
        statistics["embedding_seconds"],
        statistics["loop_lag_p99_ms"],
    )


def _metadata_document(
    pipeline: Pipeline,
    selection: ThemeSelection,
    assembly: AssemblyResult,
    failed_themes: dict[str, str],
    statistics: dict[str, Any],
    provider_json: dict[str, Any],
) -> dict[str, Any]:
    params = pipeline.params
    used = {theme for puzzle in assembly.puzzles for theme in puzzle.themes}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
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
        "failed_themes": failed_themes,
        "failed_puzzles": assembly.failed_puzzles,
        "unused_themes": list(assembly.unused_themes),
        "provider": provider_json,
        "timing_seconds": dict(pipeline.timings),
        "run_statistics": statistics,
        "puzzle_generation": params.puzzle_generation.model_dump(),
    }


def _load_selection(workspace: Workspace) -> ThemeSelection:
    path = workspace.selected_themes
    document = read_json(path, "selected themes")
    try:
        return ThemeSelection.from_json(document)
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a selected-themes file (missing {error})") from None


def _load_candidates(workspace: Workspace) -> CandidateSearchResult:
    path = workspace.candidate_words
    document = read_json(path, "candidate words")
    try:
        candidates = {
            theme: ThemeCandidates(tuple(entry["words"]), tuple(entry["similarity_scores"]))
            for theme, entry in document["candidates"].items()
        }
        failed = dict(document.get("metadata", {}).get("failed_themes", {}))
    except (KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path}: not a candidate-words file (missing {error})") from None
    return CandidateSearchResult(candidates=candidates, failed_themes=failed)
