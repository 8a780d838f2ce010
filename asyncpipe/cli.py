"""The command line: parse flags, set up logging, run a stage, decide the exit code.

This is the only place that turns outcomes into exit codes, and the only place
that catches asyncpipe's errors to print them as one line:

    0    every puzzle asked for was generated
    1    fewer puzzles than asked for (the outputs hold those that were made)
    2    usage, configuration or input error (nothing was run past the error)
    70   internal error (a bug: the traceback is logged)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from asyncpipe import __version__
from asyncpipe.config import Overrides, load_params
from asyncpipe.embeddings.select import PROVIDER_CHOICES
from asyncpipe.errors import AsyncpipeError
from asyncpipe.stages import (
    EnhanceReport,
    Pipeline,
    run_all,
    run_enhance,
    run_select_candidates,
    run_select_themes,
)
from asyncpipe.workspace import Workspace

EXIT_OK = 0
EXIT_FEWER_PUZZLES = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

DEFAULT_PARAMS = "params.yaml"

_EPILOG = """\
exit codes:
  0    every puzzle asked for was generated
  1    fewer puzzles than asked for (the outputs hold those that were made)
  2    usage, configuration or input error
  70   internal error (a bug; the traceback is logged)
  130  interrupted (Ctrl-C)
"""

log = logging.getLogger("asyncpipe")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    _configure_logging(arguments.log_level)
    try:
        return _run(arguments)
    except AsyncpipeError as error:
        log.error("%s", error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception:
        log.exception("internal error; please report it with the lines above")
        return EXIT_INTERNAL


def _run(arguments: argparse.Namespace) -> int:
    workdir = Path(arguments.workdir).expanduser().resolve()
    if not workdir.is_dir():
        raise _UsageError(f"--workdir {arguments.workdir}: not a directory")
    params_path = _params_path(arguments.params, workdir)
    loaded = load_params(params_path, Overrides(count=arguments.count, seed=arguments.seed))
    if arguments.log_level is None:
        logging.getLogger().setLevel(loaded.params.logging.level)
    log.info("asyncpipe %s, params from %s, workdir %s", __version__, loaded.source, workdir)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    for note in loaded.notes:
        log.info("%s", note)

    pipeline = Pipeline(loaded, Workspace(workdir, loaded.params), arguments.provider)
    return _COMMANDS[arguments.command](pipeline)


def _finish(pipeline: Pipeline, report: EnhanceReport) -> int:
    log.info("Outputs: %s", pipeline.workspace.final_puzzles.parent)
    if report.puzzles_generated < report.puzzles_requested:
        return EXIT_FEWER_PUZZLES
    return EXIT_OK


def _command_run(pipeline: Pipeline) -> int:
    return _finish(pipeline, run_all(pipeline))


def _command_select_themes(pipeline: Pipeline) -> int:
    run_select_themes(pipeline)
    return EXIT_OK


def _command_select_candidates(pipeline: Pipeline) -> int:
    run_select_candidates(pipeline)
    return EXIT_OK


def _command_enhance(pipeline: Pipeline) -> int:
    return _finish(pipeline, run_enhance(pipeline))


_COMMANDS: dict[str, Callable[[Pipeline], int]] = {
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

    parser = argparse.ArgumentParser(
        prog="asyncpipe",
        description="Generate batches of themed word puzzles (4 themes x 4 words).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asyncpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in (
        ("run", "run all three stages"),
        ("select-themes", "stage 1: draw the batch's themes from the theme source"),
        ("select-candidates", "stage 2: find candidate words for each theme"),
        ("enhance", "stage 3: embed, rank, assemble puzzles and write the outputs"),
    ):
        commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _configure_logging(level: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or "INFO")
    # One line per HTTP request drowns the progress lines; their failures reach us anyway.
    for chatty in ("httpx", "httpx2", "httpcore", "google_genai"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
