"""The command line: parse flags, set up logging, run a stage, decide the exit code.

This is the only place that turns outcomes into exit codes, and the only place
that catches asyncpipe's errors to print them as one line (see `_EPILOG`).
Signals are handled for the whole invocation by `asyncpipe.run.interrupt`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from asyncpipe import __version__
from asyncpipe.embeddings.batch_jobs import BatchJob, job_lines
from asyncpipe.embeddings.providers.gemini_batch import BatchApi
from asyncpipe.embeddings.select import PROVIDER_CHOICES, plan_provider
from asyncpipe.errors import AsyncpipeError, BusyError, InputError, OutputError
from asyncpipe.io.files import read_json
from asyncpipe.io.puzzle_sets import creation_time
from asyncpipe.io.puzzle_sets_check import validate_puzzle_sets
from asyncpipe.run.allocator import hold_mmap_threshold
from asyncpipe.run.blas import hold_one_blas_thread
from asyncpipe.run.checkpoint import read_checkpoint
from asyncpipe.run.interrupt import Interrupted, Shutdown
from asyncpipe.run.lock import exclusive_run
from asyncpipe.run.pipeline import (
    EnhanceReport,
    Pipeline,
    run_all,
    run_enhance,
    run_select_candidates,
    run_select_themes,
)
from asyncpipe.settings.params_file import Overrides, load_params
from asyncpipe.settings.sections import SET_NAME_PATTERN
from asyncpipe.settings.workspace import Workspace

EXIT_OK = 0
EXIT_FEWER_PUZZLES = 1
EXIT_USAGE = 2
EXIT_DAILY_QUOTA = 3
EXIT_INTERNAL = 70
EXIT_OUTPUT = 74
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130

DEFAULT_PARAMS = "params.yaml"

_EPILOG = """\
exit codes:
  0    every puzzle asked for was generated
  1    fewer puzzles than asked for, below --min-success-rate (the outputs
       hold those that were made)
  2    usage, configuration or input error (one line says what and where)
  3    the day's embedding requests are spent (gemini.requests_per_day, or the
       API's per-day quota): the puzzles completed so far are written and
       marked partial; `run --resume` after midnight Pacific time continues
  70   internal error (a bug; the traceback is logged)
  74   an output could not be written (permissions, full disk); finished work
       is kept, so `run --resume` after the fix repeats none of it
  75   another run is working in the same workdir; try again when it ends
  130  interrupted by SIGINT (Ctrl-C)
  143  interrupted by SIGTERM
       (130, 143: the puzzles completed so far are written and marked partial
       in puzzle_metadata.json; `run --resume` continues the run. While batch
       mode waits on its jobs: at once, nothing written, the jobs left running;
       `run --resume` waits on them again)
"""

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    _configure_logging(arguments.log_level, arguments.log_format)
    hold_mmap_threshold()  # before the first vector: see asyncpipe.run.allocator
    hold_one_blas_thread()  # the run's products are small: see asyncpipe.run.blas
    shutdown = Shutdown()
    try:
        with shutdown.installed():
            return _run(arguments, shutdown)
    except OutputError as error:
        log.error("%s", error)
        return EXIT_OUTPUT
    except BusyError as error:
        log.error("%s", error)
        return EXIT_BUSY
    except AsyncpipeError as error:
        log.error("%s", error)
        return EXIT_USAGE
    except Interrupted as interrupted:
        return interrupted.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception:
        log.exception("internal error; please report it with the lines above")
        return EXIT_INTERNAL


def _run(arguments: argparse.Namespace, shutdown: Shutdown) -> int:
    if arguments.command == "validate-sets":
        return _command_validate_sets(arguments.file)
    workdir = Path(arguments.workdir).expanduser().resolve()
    if not workdir.is_dir():
        raise _UsageError(f"--workdir {arguments.workdir}: not a directory")
    set_name = getattr(arguments, "set_name", None)
    if set_name is not None and not re.fullmatch(SET_NAME_PATTERN, set_name):
        raise _UsageError(
            f"--set-name {set_name!r}: the app takes 1 to 50 letters, digits, _ or - "
            f"({SET_NAME_PATTERN})"
        )
    params_path = _params_path(arguments.params, workdir)
    history = arguments.history and str(Path(arguments.history).expanduser().resolve())
    loaded = load_params(
        params_path,
        Overrides(
            count=arguments.count,
            seed=arguments.seed,
            history=history,
            set_name=set_name,
            embedding_mode=getattr(arguments, "embedding_mode", None),
        ),
    )
    if arguments.log_level is None:
        logging.getLogger().setLevel(loaded.params.logging.level)
    log.info("asyncpipe %s, params from %s, workdir %s", __version__, loaded.source, workdir)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    for note in loaded.notes:
        log.info("%s", note)

    shutdown.grace_seconds = loaded.params.concurrency.shutdown_grace_seconds
    workspace = Workspace(workdir, loaded.params)
    pipeline = Pipeline(
        loaded,
        workspace,
        arguments.provider,
        shutdown=shutdown,
        resume=getattr(arguments, "resume", False),
        progress_bar=False if arguments.log_format == "json" else None,
        created_at=creation_time(getattr(arguments, "created_at", None), os.environ),
    )
    if arguments.command == "jobs":
        if not arguments.cancel:
            return _command_jobs(pipeline, cancel=False)  # reads only: no lock needed
        # A run waiting on the jobs would resubmit what is cancelled under it, and pay
        # again: a cancel waits for no run, it is refused while one works (exit 75).
        with exclusive_run(workspace.run_lock):
            return _command_jobs(pipeline, cancel=True)
    if arguments.command in ("run", "enhance"):
        pipeline.provider_plan()  # a missing key stops the command before it writes anything
    with exclusive_run(workspace.run_lock):
        code = _COMMANDS[arguments.command](pipeline, arguments)
    return shutdown.exit_code if shutdown.exit_code is not None else code


def _finish(report: EnhanceReport, pipeline: Pipeline, min_success_rate: float) -> int:
    log.info("Outputs: %s", pipeline.workspace.final_puzzles.parent)
    made, asked = report.puzzles_generated, report.puzzles_requested
    if report.partial:  # a signal decides the exit code (in `_run`), else the spent day
        return EXIT_DAILY_QUOTA if report.daily_quota_spent else EXIT_OK
    if made < asked and made < min_success_rate * asked:
        log.warning(
            "%d of %d puzzles made (%.1f%%), below --min-success-rate %g",
            made,
            asked,
            100.0 * made / asked,
            min_success_rate,
        )
        return EXIT_FEWER_PUZZLES
    return EXIT_OK


def _command_run(pipeline: Pipeline, arguments: argparse.Namespace) -> int:
    return _finish(run_all(pipeline), pipeline, arguments.min_success_rate)


def _command_select_themes(pipeline: Pipeline, arguments: argparse.Namespace) -> int:
    run_select_themes(pipeline)
    return EXIT_OK


def _command_select_candidates(pipeline: Pipeline, arguments: argparse.Namespace) -> int:
    run_select_candidates(pipeline)
    return EXIT_OK


def _command_enhance(pipeline: Pipeline, arguments: argparse.Namespace) -> int:
    return _finish(run_enhance(pipeline), pipeline, arguments.min_success_rate)


def _command_validate_sets(file: str) -> int:
    """Check a puzzle_sets.json against the app's rules: each problem logged, exit 0 or 2."""
    path = Path(file).expanduser()
    problems = validate_puzzle_sets(read_json(path, "puzzle sets", stage="run"))
    for problem in problems:
        log.warning("%s: %s", path, problem)
    if problems:
        raise InputError(
            f"{path}: {len(problems)} of the puzzle app's rules broken (listed above); "
            f"the first: {problems[0]}"
        )
    log.info("%s: the puzzle app's rules hold", path)
    return EXIT_OK


def _command_jobs(pipeline: Pipeline, cancel: bool) -> int:
    """List the Batch API jobs of the run recorded in the workdir (and cancel the open ones)."""
    path = pipeline.workspace.checkpoint
    recorded = read_checkpoint(path)
    if recorded is None or not recorded.batch_jobs:
        print(f"No batch jobs: {path} records none")
        return EXIT_OK
    plan = plan_provider("gemini", pipeline.params)  # a missing key is one clear line
    if plan.api_key is None:  # plan_provider refuses that already
        raise InputError(f"asyncpipe jobs needs {pipeline.params.gemini.api_key_env}")
    for line in asyncio.run(_job_lines(recorded.batch_jobs, pipeline, plan.api_key, cancel)):
        print(line)
    return EXIT_OK


async def _job_lines(
    jobs: Sequence[BatchJob], pipeline: Pipeline, api_key: str, cancel: bool
) -> list[str]:
    api = BatchApi(pipeline.params.gemini, api_key)
    try:
        return await job_lines(api, jobs, cancel)
    finally:
        await api.aclose()


_COMMANDS: dict[str, Callable[[Pipeline, argparse.Namespace], int]] = {
    "run": _command_run,
    "select-themes": _command_select_themes,
    "select-candidates": _command_select_candidates,
    "enhance": _command_enhance,
}


class _UsageError(AsyncpipeError):
    """A command-line flag is wrong."""


def _params_path(flag: str | None, workdir: Path) -> Path | None:
    """--params as given; else params.yaml in the workdir if there is one; else defaults."""
    if flag is not None:
        return Path(flag).expanduser()
    candidate = workdir / DEFAULT_PARAMS
    return candidate if candidate.exists() else None


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--params",
        metavar="FILE",
        help=f"params file (default: {DEFAULT_PARAMS} in the workdir, else built-in defaults)",
    )
    common.add_argument(
        "--workdir",
        metavar="DIR",
        default=".",
        help="folder that relative paths in the params file resolve against (default: .)",
    )
    common.add_argument("--count", type=_positive_int, metavar="N", help="number of puzzles")
    common.add_argument("--seed", type=int, metavar="N", help="random seed for theme selection")
    common.add_argument(
        "--history",
        metavar="FILE",
        help="the published batches, one JSON line each, that a new batch does not repeat "
        "(default: paths.history, data/history/published.jsonl in the workdir)",
    )
    common.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        default="auto",
        help="embedding provider; auto = gemini when its API key variable is set, else glove",
    )
    common.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level (default: logging.level from the params file)",
    )
    common.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text for people (default); json: one JSON object per line, for machines",
    )
    producing = argparse.ArgumentParser(add_help=False)
    producing.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in this workdir: finished themes and scored "
        "puzzles are not redone (refused if the params changed since)",
    )
    producing.add_argument(
        "--embedding-mode",
        choices=("online", "batch", "auto"),
        help="online requests, Batch API jobs first (half the price, up to 24 h), or auto: "
        "batch from gemini.batch_min_texts texts not yet stored (default: gemini.mode)",
    )
    producing.add_argument(
        "--min-success-rate",
        type=_rate,
        default=1.0,
        metavar="R",
        help="exit 0 when at least this share of the puzzles asked for was made, "
        "else 1 (0 to 1; default 1: every puzzle)",
    )
    producing.add_argument(
        "--set-name",
        metavar="NAME",
        help="the puzzle app's set name in puzzle_sets.json (default: output.set_name)",
    )
    producing.add_argument(
        "--created-at",
        metavar="TIME",
        help="ISO 8601 time for createdAt and lastUpdated in puzzle_sets.json (default: "
        "SOURCE_DATE_EPOCH if set, else left out, so the file is the same every run)",
    )

    parser = argparse.ArgumentParser(
        prog="asyncpipe",
        description="Generate batches of themed word puzzles (4 themes x 4 words).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asyncpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary, parents in (
        ("run", "run all three stages", [common, producing]),
        (
            "select-themes",
            "stage 1: draw the batch's themes from the theme source",
            [common],
        ),
        ("select-candidates", "stage 2: find candidate words for each theme", [common]),
        (
            "enhance",
            "stage 3: embed, rank, assemble puzzles and write the outputs",
            [common, producing],
        ),
    ):
        commands.add_parser(
            name,
            parents=parents,
            help=summary,
            description=summary,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    jobs = commands.add_parser(
        "jobs",
        parents=[common],
        help="list the Batch API jobs of the run in the workdir, with their states",
        description="list the Batch API jobs the run in the workdir created (gemini.mode "
        "batch), as its checkpoint records them, with their states asked of the API",
    )
    jobs.add_argument("--cancel", action="store_true", help="cancel the jobs that have not ended")
    checking = commands.add_parser(
        "validate-sets",
        help="check a puzzle_sets.json against the puzzle app's rules (exit 0 or 2)",
        description="check a puzzle_sets.json against the puzzle app's rules: "
        "exit 0 when they hold, 2 (each problem listed) when not",
    )
    checking.add_argument("file", metavar="FILE", help="the puzzle_sets.json to check")
    checking.set_defaults(log_level=None, log_format="text")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


class _JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _configure_logging(level: str | None, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or "INFO")
    # One line per HTTP request drowns the progress lines; their failures reach us anyway.
    for chatty in ("httpx", "httpx2", "httpcore", "google_genai"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
