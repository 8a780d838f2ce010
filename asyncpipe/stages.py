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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncpipe import __version__
from asyncpipe.assembly import AssemblyResult, assemble_puzzles
from asyncpipe.candidates import CandidateSearch, CandidateSearchResult, ThemeCandidates
from asyncpipe.config import LoadedParams, Params
from asyncpipe.documents import (
    all_embeddings_rows,
    embedding_analysis_document,
    final_puzzles_document,
    puzzle_embeddings_rows,
)
from asyncpipe.embeddings.provider import EmbeddingProvider
from asyncpipe.embeddings.select import ProviderChoice, choose_provider
from asyncpipe.enhance import EnhanceOutcome, embed_and_rank
from asyncpipe.errors import InputError
from asyncpipe.outputs import read_json, write_embedding_table, write_json
from asyncpipe.themes import ThemeSelection, read_theme_source, select_themes
from asyncpipe.vocabulary import VocabularyIndex, load_index
from asyncpipe.workspace import Workspace

log = logging.getLogger("asyncpipe")


@dataclass
class Pipeline:
    """Everything the stages share for one invocation: settings, paths, the index."""

    loaded: LoadedParams
    workspace: Workspace
    provider_choice: ProviderChoice = "auto"
    _index: VocabularyIndex | None = field(default=None, repr=False)

    @property
    def params(self) -> Params:
        return self.loaded.params

    def index(self) -> VocabularyIndex:
        """The vector index, loaded on first use and kept for the later stages."""
        if self._index is None:
            started = time.perf_counter()
            self._index = load_index(self.workspace.index_source)
            log.info(
                "Loaded vector index %s: %d words x %d dimensions in %.2fs",
                self._index.name,
                len(self._index),
                self._index.dimension,
                time.perf_counter() - started,
            )
        return self._index


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
    started = time.perf_counter()
    search = CandidateSearch(pipeline.index(), params.vector_search)
    result = search.search(list(selection.all_themes), params.puzzle_generation)
    document = {
        "candidates": {theme: found.to_json() for theme, found in result.candidates.items()},
        "metadata": {
            "index": pipeline.index().name,
            "index_metadata": pipeline.index().metadata,
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
        time.perf_counter() - started,
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
    generation = params.puzzle_generation
    workspace = pipeline.workspace
    started = time.perf_counter()
    selection = selection or _load_selection(workspace)
    candidates = candidates or _load_candidates(workspace)
    chosen = choose_provider(pipeline.provider_choice, params, pipeline.index())
    provider = chosen.provider
    log.info("Embedding provider: %s", chosen.reason)

    failed_themes = dict(candidates.failed_themes)
    usable: dict[str, tuple[str, ...]] = {}
    for theme in selection.all_themes:
        found = candidates.candidates.get(theme)
        if found is None:
            failed_themes.setdefault(theme, "no candidates were searched for this theme")
        elif len(found.words) < generation.words_per_theme:
            failed_themes.setdefault(
                theme,
                f"only {len(found.words)} candidate words, a group needs {generation.words_per_theme}",
            )
        else:
            usable[theme] = found.words

    outcome, assembly = asyncio.run(_embed_and_assemble(pipeline, selection, usable, provider))
    failed_themes.update(outcome.failed_themes)
    failed_themes.update(assembly.failed_themes)

    provider_json = {
        "name": provider.info.name,
        "model": provider.info.model,
        "dimension": provider.info.dimension,
        "task_type": provider.info.task_type,
        "chosen_because": chosen.reason,
    }
    table_format = params.output.embedding_table_format
    precision = params.output.csv_precision
    write_json(
        workspace.final_puzzles,
        final_puzzles_document(assembly.puzzles, params.output.include_similarity_scores),
    )
    write_embedding_table(
        workspace.embedding_cache_table, all_embeddings_rows(outcome.embedded), table_format, precision
    )
    write_embedding_table(
        workspace.puzzle_embeddings_table,
        puzzle_embeddings_rows(assembly.puzzles, outcome.embedded),
        table_format,
        precision,
    )
    write_json(
        workspace.embedding_analysis,
        embedding_analysis_document(outcome.embedded, assembly.puzzles, provider_json),
    )
    report = EnhanceReport(generation.total_puzzle_count, len(assembly.puzzles))
    if params.output.include_metadata:
        write_json(
            workspace.puzzle_metadata,
            _metadata_document(
                pipeline, selection, assembly, failed_themes, outcome, provider_json, started
            ),
        )
    log.info(
        "Generated %d of %d puzzles in %.2fs -> %s",
        report.puzzles_generated,
        report.puzzles_requested,
        time.perf_counter() - started,
        workspace.final_puzzles,
    )
    for name, reason in assembly.failed_puzzles.items():
        log.warning("%s not generated: %s", name, reason)
    return report


def run_all(pipeline: Pipeline) -> EnhanceReport:
    selection = run_select_themes(pipeline)
    candidates = run_select_candidates(pipeline, selection)
    return run_enhance(pipeline, selection, candidates)


async def _embed_and_assemble(
    pipeline: Pipeline,
    selection: ThemeSelection,
    usable: dict[str, tuple[str, ...]],
    provider: EmbeddingProvider,
) -> tuple[EnhanceOutcome, AssemblyResult]:
    """Embed the primary themes, then spares only as far as failures require.

    Spares cost API calls with a paid provider, so they are embedded in rounds,
    each just large enough to cover the themes still missing. The assembly
    always sees themes in draw order, so the result does not depend on rounds.
    """
    params = pipeline.params
    generation = params.puzzle_generation
    ordered = [theme for theme in selection.all_themes if theme in usable]
    primary = set(selection.themes)
    queue = [theme for theme in ordered if theme in primary]
    spares = [theme for theme in ordered if theme not in primary]
    outcome = EnhanceOutcome()
    try:
        while True:
            if queue:
                round_outcome = await embed_and_rank(
                    [(theme, usable[theme]) for theme in queue],
                    provider,
                    params.concurrency.max_concurrent_requests,
                    params.concurrency.batch_size,
                )
                outcome.embedded.update(round_outcome.embedded)
                outcome.failed_themes.update(round_outcome.failed_themes)
                _add_statistics(outcome, round_outcome)
            ranked = [outcome.embedded[t].ranked for t in ordered if t in outcome.embedded]
            assembly = assemble_puzzles(
                ranked,
                generation.total_puzzle_count,
                generation.themes_per_puzzle,
                generation.words_per_theme,
            )
            missing = generation.total_puzzle_count - len(assembly.puzzles)
            if missing == 0 or not spares:
                return outcome, assembly
            shortfall = missing * generation.themes_per_puzzle - len(assembly.unused_themes)
            take = max(shortfall, generation.themes_per_puzzle)
            queue, spares = spares[:take], spares[take:]
            log.info("Embedding %d spare themes to replace failed ones", len(queue))
    finally:
        await provider.aclose()


def _add_statistics(total: EnhanceOutcome, part: EnhanceOutcome) -> None:
    mine, theirs = total.statistics, part.statistics
    mine.requests += theirs.requests
    mine.texts_embedded += theirs.texts_embedded
    mine.themes_done += theirs.themes_done
    mine.themes_failed += theirs.themes_failed
    mine.seconds += theirs.seconds


def _metadata_document(
    pipeline: Pipeline,
    selection: ThemeSelection,
    assembly: AssemblyResult,
    failed_themes: dict[str, str],
    outcome: EnhanceOutcome,
    provider_json: dict[str, Any],
    started: float,
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
        "timing": {"enhance_seconds": round(time.perf_counter() - started, 3)},
        "run_statistics": outcome.statistics.to_json(),
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
