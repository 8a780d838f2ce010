"""Kill runs at random moments, resume them, and check nothing was lost (`make resilience`).

Issue 5's check, done many times over: a run against the local Gemini test
server is stopped at a random moment of its course (SIGKILL mostly, some
SIGTERM and SIGINT), then resumed with `run --resume` in the same folder. For
every trial it reports:

- the killed run's exit (-9, 143 or 130; 0 when it had already finished);
- processes left in the run's session 5 s after it ended (must be none);
- texts of themes the checkpoint had recorded as finished that the server was
  asked for again by the resumed run (must be none);
- whether the resumed run's final_puzzles.json is byte-identical to that of an
  uninterrupted run (must be);
- the store's `PRAGMA integrity_check`.

Only 127.0.0.1 is contacted. Results go to stdout and reports/kill_and_resume.json;
the exit code is 1 when any trial broke a rule, so CI can run it too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.gemini_server import GeminiTestServer, ServerConfig  # noqa: E402

API_KEY = "resilience-key"
FINAL = Path("data/outputs/final_puzzles.json")
CHECKPOINT = Path("data/cache/run_checkpoint.jsonl")
CANDIDATES = Path("data/candidates/candidate_words.json")
STORE = Path("data/cache/embeddings.sqlite3")
#: Mostly SIGKILL: it runs no cleanup at all, the hardest case for resuming.
SIGNALS = [signal.SIGKILL] * 3 + [signal.SIGTERM, signal.SIGINT]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--puzzles", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1, help="seeds the kill moments")
    parser.add_argument("--output", type=Path, default=REPO / "reports" / "kill_and_resume.json")
    arguments = parser.parse_args()
    chooser = random.Random(arguments.seed)

    with (
        GeminiTestServer(
            ServerConfig(valid_keys=frozenset({API_KEY}), latency=arguments.latency)
        ) as server,
        tempfile.TemporaryDirectory(prefix="asyncpipe-resilience-") as scratch,
    ):
        root = Path(scratch)
        reference = _folder(root / "reference", server.base_url)
        started = time.monotonic()
        finished = _run(reference, arguments.puzzles)
        whole = time.monotonic() - started
        if finished.returncode != 0:
            print(finished.stderr, file=sys.stderr)
            return 1
        expected = (reference / FINAL).read_bytes()
        print(f"uninterrupted run: {whole:.1f} s, {server.request_count} requests", flush=True)

        trials = []
        for number in range(1, arguments.trials + 1):
            kind = chooser.choice(SIGNALS)
            moment = chooser.uniform(0.02, 1.05) * whole
            folder = _folder(root / f"trial-{number}", server.base_url)
            trial = _trial(folder, server, arguments.puzzles, kind, moment, expected)
            trials.append(trial)
            print(_line(number, trial), flush=True)

    broken = [trial for trial in trials if not trial["ok"]]
    summary = {
        "uninterrupted_seconds": round(whole, 2),
        "trials": trials,
        "trials_broken": len(broken),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"{len(trials) - len(broken)} of {len(trials)} trials kept every rule -> {arguments.output}"
    )
    return 1 if broken else 0


def _trial(
    folder: Path,
    server: GeminiTestServer,
    puzzles: int,
    kind: signal.Signals,
    moment: float,
    expected: bytes,
) -> dict[str, Any]:
    process = _start(folder, puzzles)
    time.sleep(moment)
    if process.poll() is None:
        os.kill(process.pid, kind)
    killed_exit = process.wait(timeout=120)
    left = _session_members(process.pid)
    finished_before = _finished_themes(folder)
    asked_before = server.texts_requested()

    resumed = _run(folder, puzzles, "--resume")
    asked_again = server.texts_requested() - asked_before
    repeated = sorted(_texts_of(folder, finished_before) & set(asked_again))
    identical = (folder / FINAL).exists() and (folder / FINAL).read_bytes() == expected
    integrity = _integrity(folder)
    ok = (
        not left
        and not repeated
        and resumed.returncode == 0
        and identical
        and integrity in ("ok", "no store")
    )
    return {
        "signal": kind.name,
        "at_seconds": round(moment, 2),
        "killed_exit": killed_exit,
        "themes_finished_before": len(finished_before),
        "processes_left": left,
        "texts_repeated_from_finished_themes": len(repeated),
        "resume_exit": resumed.returncode,
        "resume_requests_texts": sum(asked_again.values()),
        "identical_to_uninterrupted": identical,
        "store_integrity": integrity,
        "ok": ok,
        **({} if resumed.returncode == 0 else {"resume_stderr": resumed.stderr[-2000:]}),
    }


def _line(number: int, trial: dict[str, Any]) -> str:
    return (
        f"trial {number}: {trial['signal']:7} at {trial['at_seconds']:5.2f} s -> exit "
        f"{trial['killed_exit']:4}, {trial['themes_finished_before']:3} themes recorded, "
        f"{len(trial['processes_left'])} processes left, resume exit {trial['resume_exit']} "
        f"({trial['resume_requests_texts']} texts sent, "
        f"{trial['texts_repeated_from_finished_themes']} of finished themes), identical "
        f"{trial['identical_to_uninterrupted']}, store {trial['store_integrity']}"
        f"{'' if trial['ok'] else '  <-- BROKEN'}"
    )


def _folder(folder: Path, base_url: str) -> Path:
    folder.mkdir(parents=True)
    settings = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    settings["gemini"].update(base_url=base_url, embedding_dimension=768)
    settings["concurrency"].update(max_concurrent_requests=2, batch_size=50)
    settings["puzzle_generation"]["candidate_words_per_theme"] = 20
    (folder / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return folder


def _command(puzzles: int, *extra: str) -> list[str]:
    run = [sys.executable, "-m", "asyncpipe", "run", "--provider", "gemini"]
    return [*run, "--count", str(puzzles), *extra]


def _environment() -> dict[str, str]:
    return {**os.environ, "GEMINI_API_KEY": API_KEY, "PYTHONPATH": str(REPO)}


def _start(folder: Path, puzzles: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(puzzles),
        cwd=folder,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _run(folder: Path, puzzles: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(puzzles, *extra),
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _session_members(session: int, patience: float = 5.0) -> list[str]:
    """Live processes of `session` after giving exiting ones `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session and fields[0] != "Z":
                    members.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, IndexError, ValueError):
                continue
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.1)


def _finished_themes(folder: Path) -> list[str]:
    """Themes the checkpoint records as embedded (a last line cut short is ignored)."""
    try:
        data = (folder / CHECKPOINT).read_bytes()
    except FileNotFoundError:
        return []
    themes = []
    for line in data.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("embedded"):
            themes.append(record["theme"])
    return themes


def _texts_of(folder: Path, themes: list[str]) -> set[str]:
    if not themes:
        return set()
    candidates = json.loads((folder / CANDIDATES).read_text(encoding="utf-8"))["candidates"]
    texts: set[str] = set()
    for theme in themes:
        for text in [theme, *candidates[theme]["words"]]:
            texts.add(" ".join(unicodedata.normalize("NFC", text).split()))
    return texts


def _integrity(folder: Path) -> str:
    if not (folder / STORE).exists():
        return "no store"
    with sqlite3.connect(folder / STORE) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


if __name__ == "__main__":
    sys.exit(main())
