"""Where each stage reads and writes, resolved once against the working directory.

params.yaml holds relative paths (the older pipeline's layout); the command
line's `--workdir` says what they are relative to. Every other module asks a
`Workspace` for a file instead of joining paths itself, so the file names of
the pipeline's contract live here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asyncpipe.settings.sections import BUILTIN_INDEX, BUILTIN_THEMES, Params


@dataclass(frozen=True)
class Workspace:
    root: Path
    params: Params

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def theme_source(self) -> Path | None:
        """The theme list file, or None for the list shipped with asyncpipe."""
        source = self.params.themes.source
        return None if source == BUILTIN_THEMES else self.resolve(source)

    @property
    def index_source(self) -> Path | None:
        """The older-format index folder, or None for the bundled GloVe index."""
        source = self.params.vector_search.data_source
        return None if source == BUILTIN_INDEX else self.resolve(source)

    @property
    def selected_themes(self) -> Path:
        return self.resolve(self.params.paths.themes) / "selected_themes.json"

    @property
    def candidate_words(self) -> Path:
        return self.resolve(self.params.paths.candidates) / "candidate_words.json"

    @property
    def final_puzzles(self) -> Path:
        return self.resolve(self.params.paths.outputs) / "final_puzzles.json"

    @property
    def puzzle_metadata(self) -> Path:
        return self.resolve(self.params.paths.outputs) / "puzzle_metadata.json"

    @property
    def puzzle_sets(self) -> Path:
        """The puzzle app's document (`asyncpipe.io.puzzle_sets`)."""
        return self.resolve(self.params.output.puzzle_sets_file)

    @property
    def embedding_analysis(self) -> Path:
        return self.resolve(self.params.paths.reports) / "embedding_analysis.json"

    @property
    def puzzle_quality(self) -> Path:
        return self.resolve(self.params.paths.reports) / "puzzle_quality.json"

    @property
    def review_page(self) -> Path:
        """The page a puzzle editor opens in a browser (`asyncpipe.io.review_page`)."""
        return self.resolve(self.params.paths.reports) / "puzzles.html"

    @property
    def embedding_cache_table(self) -> Path:
        return self._table(self.params.output.embedding_cache_file)

    @property
    def puzzle_embeddings_table(self) -> Path:
        return self._table(self.params.output.puzzle_embeddings_file)

    @property
    def cache_dir(self) -> Path:
        return self.resolve(self.params.paths.cache)

    @property
    def history(self) -> Path:
        """The published batches (`asyncpipe.io.history_file`)."""
        return self.resolve(self.params.paths.history)

    def enhance_output_folders(self) -> list[Path]:
        """The folders the enhance stage writes to, the cache (store, checkpoint) and the
        history's included."""
        files = (
            self.final_puzzles,
            self.puzzle_sets,
            self.puzzle_metadata,
            self.embedding_analysis,
            self.puzzle_quality,
            self.review_page,
            self.embedding_cache_table,
            self.puzzle_embeddings_table,
        )
        return [*dict.fromkeys(path.parent for path in files), self.cache_dir, self.history.parent]

    def output_folders(self) -> list[Path]:
        """Every folder a whole run writes to."""
        stages = (self.selected_themes.parent, self.candidate_words.parent)
        return list(dict.fromkeys([*stages, *self.enhance_output_folders()]))

    @property
    def run_lock(self) -> Path:
        """Held by the run working in this workspace (`asyncpipe.run.lock`)."""
        return self.cache_dir / "run.lock"

    @property
    def checkpoint(self) -> Path:
        """The record of a run in progress, for `--resume` (`asyncpipe.run.checkpoint`)."""
        return self.cache_dir / "run_checkpoint.jsonl"

    def _table(self, relative: str) -> Path:
        path = self.resolve(relative)
        if self.params.output.embedding_table_format == "parquet":
            return path.with_suffix(".parquet")
        return path
