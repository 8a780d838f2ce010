"""asyncpipe from Python: generate a batch as `python -m asyncpipe run` does.

The command line (`asyncpipe.cli`) adds what a terminal needs on top of this:
logging set-up, signal handlers, exit codes. From Python the errors of
`asyncpipe.errors` are raised instead, and nothing is installed process-wide.
"""

from __future__ import annotations

from pathlib import Path

from asyncpipe.embeddings.select import ProviderChoice
from asyncpipe.run.blas import one_blas_thread
from asyncpipe.run.lock import exclusive_run
from asyncpipe.run.pipeline import EnhanceReport, Pipeline, run_all
from asyncpipe.settings.params_file import LoadedParams, load_params
from asyncpipe.settings.sections import Params
from asyncpipe.settings.workspace import Workspace


def generate(
    params: Params | Path | str | None = None,
    workdir: Path | str = ".",
    *,
    provider: ProviderChoice = "auto",
    resume: bool = False,
) -> EnhanceReport:
    """Run all three stages in `workdir` and write their files; returns what was made.

    `params` is a `Params` value, the path of a params file, or None for
    `params.yaml` in `workdir` when there is one (the built-in defaults otherwise),
    as `--params` on the command line. Relative paths in the params resolve against `workdir`.
    Like a command-line run, it holds the workdir's lock (`BusyError` when another
    run holds it) and, with `resume`, continues the run its checkpoint records.
    A run cut short because the day's requests are spent is no error: the report
    says `partial`, `interrupted_by == "daily_quota"` and when to resume
    (`resume_after`), where the command line exits with 3.
    """
    root = Path(workdir).expanduser().resolve()
    loaded = _loaded(params, root)
    workspace = Workspace(root, loaded.params)
    pipeline = Pipeline(loaded, workspace, provider, resume=resume, progress_bar=False)
    with exclusive_run(workspace.run_lock), one_blas_thread():
        return run_all(pipeline)


def _loaded(params: Params | Path | str | None, workdir: Path) -> LoadedParams:
    if isinstance(params, Params):
        return LoadedParams(params, "Params given by the caller")
    if params is None:
        default = workdir / "params.yaml"
        return load_params(default if default.is_file() else None)
    return load_params(Path(params).expanduser())  # relative to the caller, as --params is
