"""Figures of puzzle quality over a few seeds of the offline batch (`make figures`).

For each seed it runs `python -m asyncpipe run --provider glove --seed N` in a real
subprocess, in a fresh workdir, reads that run's `data/outputs/final_puzzles.json`
and reports, per seed and over all seeds:

- member share: the group words that are members of their theme's lexicon category
  (primary senses only, and with secondary senses), the groups whose four words all
  are, and the themes that name a lexicon category at all;
- the solver's verdicts from each puzzle's `quality` (intended split found,
  ambiguous, margin, difficulty in [0, 1]);
- the same two for a baseline, each theme's top 4 ranked candidates, rebuilt from
  the run's table of every embedded text (skipped, with the reason, if it is absent);
- difficulty levels, when the outputs carry them (per group or per puzzle);
- duplicates: two tiles of a puzzle with one variant key, and tiles that are forms
  of one of the puzzle's theme words, as counts with examples;
- a few puzzles as a player sees them ("Trees: oak maple birch pine").

A readable report goes to stdout; `--json FILE` writes the figures. Nothing here
passes or fails: the figures are for reading, and for comparing one candidate
source with another (README, "Puzzle quality").
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asyncpipe.io.lexicon_file import load_lexicon  # noqa: E402
from asyncpipe.puzzle.lexicon import Lexicon  # noqa: E402
from asyncpipe.puzzle.scoring import score_puzzle  # noqa: E402
from asyncpipe.puzzle.words import is_variant_of_theme, variant_key  # noqa: E402

FINAL = Path("data/outputs/final_puzzles.json")
ALL_TABLE = Path("data/cache/all_embeddings.csv")
SAMPLES = 5
#: Examples kept per kind of duplicate: enough to see what they are.
EXAMPLES = 8


@dataclass(frozen=True)
class Group:
    theme: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Puzzle:
    """One puzzle of one run's final_puzzles.json, named as in the report."""

    label: str
    groups: tuple[Group, ...]
    entry: dict[str, Any]

    @property
    def tiles(self) -> list[str]:
        return [word for group in self.groups for word in group.words]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--count", type=int, help="puzzles per run (default: the batch's)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--keep", type=Path, help="run in this folder (one workdir per seed) and keep the outputs"
    )
    arguments = parser.parse_args()

    lexicon = load_lexicon()
    runs: dict[int, Path] = {}
    with tempfile.TemporaryDirectory(prefix="asyncpipe-figures-") as scratch:
        root = arguments.keep or Path(scratch)
        for seed in arguments.seeds:
            runs[seed] = run_batch(root / f"seed-{seed}", seed, arguments.count)
        report = figures_of_runs(runs, lexicon)
    print(format_report(report))
    if arguments.json is not None:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten {arguments.json}")
    return 0


def run_batch(workdir: Path, seed: int, count: int | None) -> Path:
    """One offline batch in a subprocess, as a user runs it; returns its workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "asyncpipe", "run", "--workdir", str(workdir)]
    command += ["--seed", str(seed), "--provider", "glove", "--log-level", "WARNING"]
    if count is not None:
        command += ["--count", str(count)]
    print(f"seed {seed}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    finished = subprocess.run(command, capture_output=True, text=True)
    # Exit 1 still writes the puzzles that were made: those are measured too.
    if finished.returncode not in (0, 1) or not (workdir / FINAL).exists():
        raise SystemExit(f"asyncpipe run exited {finished.returncode}:\n{finished.stderr}")
    return workdir


def figures_of_runs(runs: dict[int, Path], lexicon: Lexicon) -> dict[str, Any]:
    """Every figure per seed and over all seeds, from the runs' workdirs."""
    per_seed: dict[str, Any] = {}
    everything: list[Puzzle] = []
    baselines: list[Puzzle] = []
    baseline_missing: list[str] = []
    for seed, workdir in runs.items():
        puzzles = read_puzzles(workdir / FINAL, prefix=f"seed {seed} ")
        figures = puzzle_figures(puzzles, lexicon)
        baseline = baseline_puzzles(puzzles, workdir / ALL_TABLE)
        if isinstance(baseline, str):
            baseline_missing.append(f"seed {seed}: {baseline}")
            figures["baseline_top4"] = {"skipped": baseline}
        else:
            figures["baseline_top4"] = baseline_figures(baseline, lexicon)
            baselines.extend(baseline)
        per_seed[str(seed)] = figures
        everything.extend(puzzles)
    overall = puzzle_figures(everything, lexicon)
    overall["baseline_top4"] = (
        {"skipped": "; ".join(baseline_missing)}
        if baseline_missing
        else baseline_figures(baselines, lexicon)
    )
    return {
        "seeds": per_seed,
        "overall": overall,
        "samples": [player_view(puzzle) for puzzle in samples(everything, SAMPLES)],
    }


# --- reading the outputs -----------------------------------------------------------------


def read_puzzles(path: Path, prefix: str = "") -> list[Puzzle]:
    """The puzzles of a final_puzzles.json, in file order.

    Groups come from a `groups` list of {theme, words} objects when the file has one,
    else from `themes` and the grid-ordered `words` (word i in group i // size).
    """
    document = json.loads(path.read_text(encoding="utf-8"))
    puzzles = []
    for name, entry in document.items():
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("groups"), list):
            groups = tuple(
                Group(str(group["theme"]), tuple(group["words"])) for group in entry["groups"]
            )
        else:
            themes, words = entry["themes"], entry["words"]
            size = len(words) // len(themes)
            groups = tuple(
                Group(theme, tuple(words[i * size : (i + 1) * size]))
                for i, theme in enumerate(themes)
            )
        puzzles.append(Puzzle(f"{prefix}{name}", groups, entry))
    return puzzles


# --- the figures ---------------------------------------------------------------------------


def puzzle_figures(puzzles: Sequence[Puzzle], lexicon: Lexicon) -> dict[str, Any]:
    """All figures over some puzzles: membership, solver, difficulty levels, duplicates."""
    return {
        "puzzles": len(puzzles),
        "membership": membership_figures(puzzles, lexicon),
        "solver": solver_figures(puzzles),
        "difficulty_levels": difficulty_levels(puzzles),
        "duplicates": duplicate_figures(puzzles),
    }


def membership_figures(puzzles: Sequence[Puzzle], lexicon: Lexicon) -> dict[str, Any]:
    """How many group words belong to their theme's category, by the shipped lexicon.

    A theme names a category by `Lexicon.lookup` (any case or number); a word whose
    theme names none is no member. A word is a member when it or a form of it is
    (`Lexicon.is_member`, or a member with the same variant key: "oaks" in Trees),
    counted by primary senses only and with secondary senses too. Shares are of all
    group words, of the words whose theme is a category, of all groups, and of all
    groups' themes (a theme used twice counts twice). `exact` figures count only
    words that are members as they stand.
    """
    counts: Counter[str] = Counter()
    member_keys: dict[tuple[str, bool], frozenset[str]] = {}
    for puzzle in puzzles:
        for group in puzzle.groups:
            counts["groups"] += 1
            counts["words"] += len(group.words)
            category = lexicon.lookup(group.theme)
            if category is None:
                continue
            counts["themes_that_are_categories"] += 1
            counts["category_words"] += len(group.words)
            for secondary, name in ((False, "primary"), (True, "with_secondary")):
                keys = member_keys.get((category.name, secondary))
                if keys is None:
                    members = lexicon.members(category.name, secondary=secondary)
                    keys = frozenset(variant_key(word) for word in members)
                    member_keys[category.name, secondary] = keys
                exact = [
                    lexicon.is_member(w, category.name, secondary=secondary) for w in group.words
                ]
                found = [
                    e or variant_key(w) in keys for e, w in zip(exact, group.words, strict=True)
                ]
                counts[f"members_{name}"] += sum(found)
                counts[f"members_exact_{name}"] += sum(exact)
                counts[f"groups_all_members_{name}"] += all(found)
    words, groups = counts["words"], counts["groups"]
    figures: dict[str, Any] = {
        name: counts[name]
        for name in ("words", "category_words", "groups", "themes_that_are_categories")
    }
    for name in ("primary", "with_secondary"):
        member_count = counts[f"members_{name}"]
        figures[f"members_{name}"] = member_count
        figures[f"members_exact_{name}"] = counts[f"members_exact_{name}"]
        figures[f"member_share_{name}"] = _share(member_count, words)
        figures[f"member_share_of_category_words_{name}"] = _share(
            member_count, counts["category_words"]
        )
        figures[f"exact_member_share_{name}"] = _share(counts[f"members_exact_{name}"], words)
        figures[f"groups_all_members_{name}"] = counts[f"groups_all_members_{name}"]
        figures[f"group_share_all_members_{name}"] = _share(
            counts[f"groups_all_members_{name}"], groups
        )
    figures["theme_share_categories"] = _share(counts["themes_that_are_categories"], groups)
    return figures


def solver_figures(puzzles: Sequence[Puzzle]) -> dict[str, Any]:
    """The embedding solver's verdicts as the outputs record them (unscored puzzles skipped)."""
    scores = [p.entry["quality"] for p in puzzles if isinstance(p.entry.get("quality"), dict)]
    if not scores:
        return {"scored": 0}
    margins = [float(score["solver_margin"]) for score in scores]
    difficulty = [float(score["difficulty"]) for score in scores]
    optimal = sum(bool(score["solver_optimal"]) for score in scores)
    ambiguous = sum(bool(score["ambiguous"]) for score in scores)
    return {
        "scored": len(scores),
        "intended_split_found": optimal,
        "share_intended_split_found": _share(optimal, len(scores)),
        "ambiguous": ambiguous,
        "share_ambiguous": _share(ambiguous, len(scores)),
        "margin_median": round(float(np.median(margins)), 4),
        "margin_p10": round(float(np.percentile(margins, 10)), 4),
        "difficulty_median": round(float(np.median(difficulty)), 4),
        "difficulty_p90": round(float(np.percentile(difficulty, 90)), 4),
    }


def difficulty_levels(puzzles: Sequence[Puzzle]) -> dict[str, Any] | None:
    """Counts of the difficulty levels the outputs carry, per group and per puzzle; None if none.

    asyncpipe writes `group_levels` (1..4 per group) and `difficulty_label` (easy ..
    expert) per puzzle; older or other layouts are looked for too: `groups[i].difficulty`,
    a list under `difficulties` / `group_difficulties` / `difficulty`, and a number
    under `difficulty` / `puzzle_difficulty` for the whole puzzle (never the
    solver's `quality.difficulty`, which the solver section reports).
    """
    per_group: Counter[str] = Counter()
    per_puzzle: Counter[str] = Counter()
    for puzzle in puzzles:
        entry = puzzle.entry
        levels: list[Any] = []
        if isinstance(entry.get("groups"), list):
            levels = [g.get("difficulty") for g in entry["groups"] if isinstance(g, dict)]
        for key in ("group_levels", "difficulties", "group_difficulties", "difficulty"):
            if not any(level is not None for level in levels) and isinstance(entry.get(key), list):
                levels = entry[key]
        per_group.update(str(level) for level in levels if level is not None)
        for key in ("difficulty_label", "difficulty_level", "puzzle_difficulty", "difficulty"):
            value = entry.get(key)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                per_puzzle[str(value)] += 1
                break
    if not per_group and not per_puzzle:
        return None
    return {
        "per_group": dict(sorted(per_group.items())),
        "per_puzzle": dict(sorted(per_puzzle.items())),
    }


def duplicate_figures(puzzles: Sequence[Puzzle]) -> dict[str, Any]:
    """Tiles of one puzzle that share a variant key, and tiles that are forms of a theme word."""
    pairs: list[str] = []
    puzzles_with_pairs = 0
    theme_forms: list[str] = []
    puzzles_with_theme_forms = 0
    for puzzle in puzzles:
        tiles = puzzle.tiles
        found = [
            f"{puzzle.label}: {a} / {b}"
            for a, b in combinations(tiles, 2)
            if variant_key(a) == variant_key(b)
        ]
        forms = [
            f"{puzzle.label}: {tile!r} in {group.theme!r}"
            for tile in tiles
            for group in puzzle.groups
            if is_variant_of_theme(tile, group.theme)
        ]
        pairs += found
        theme_forms += forms
        puzzles_with_pairs += bool(found)
        puzzles_with_theme_forms += bool(forms)
    return {
        "same_variant_pairs": len(pairs),
        "puzzles_with_same_variant_pair": puzzles_with_pairs,
        "same_variant_examples": pairs[:EXAMPLES],
        "theme_word_forms": len(theme_forms),
        "puzzles_with_theme_word_form": puzzles_with_theme_forms,
        "theme_word_form_examples": theme_forms[:EXAMPLES],
    }


# --- the baseline: each theme's top 4 candidates -----------------------------------------


def baseline_puzzles(puzzles: Sequence[Puzzle], table: Path) -> list[Puzzle] | str:
    """The same puzzles with each theme's top 4 ranked candidates, scored as a run scores.

    Read from the run's table of every embedded text (rank 0 is the theme, ranks 1..
    its ranked candidates). Returns why not, as a sentence, when that cannot be done.
    """
    if not table.exists():
        return f"no {table.name} (the baseline needs the CSV table of every embedded text)"
    themes = {group.theme for puzzle in puzzles for group in puzzle.groups}
    rows: dict[str, dict[int, tuple[str, np.ndarray]]] = {theme: {} for theme in themes}
    with table.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        first_dimension = header.index("rank") + 1
        for row in reader:
            theme, word, rank = row[0], row[1], int(row[4])
            if theme in rows and 0 <= rank <= 4:
                vector = np.array(row[first_dimension:], dtype=np.float32)
                rows[theme][rank] = (word, vector)
    baseline = []
    for puzzle in puzzles:
        if any(len(rows[group.theme]) < 5 for group in puzzle.groups):
            return f"{puzzle.label}: a theme has fewer than 4 ranked candidates in {table.name}"
        groups = tuple(
            Group(group.theme, tuple(rows[group.theme][rank][0] for rank in range(1, 5)))
            for group in puzzle.groups
        )
        words = [rows[g.theme][rank] for g in puzzle.groups for rank in range(1, 5)]
        score = score_puzzle(
            np.stack([vector for _, vector in words]),
            np.stack([rows[group.theme][0][1] for group in puzzle.groups]),
            [word for word, _ in words],
        )
        baseline.append(Puzzle(puzzle.label, groups, {"quality": score.to_json()}))
    return baseline


def baseline_figures(puzzles: Sequence[Puzzle], lexicon: Lexicon) -> dict[str, Any]:
    return {
        "puzzles": len(puzzles),
        "membership": membership_figures(puzzles, lexicon),
        "solver": solver_figures(puzzles),
        "duplicates": duplicate_figures(puzzles),
    }


# --- the report ------------------------------------------------------------------------------


def samples(puzzles: Sequence[Puzzle], count: int) -> list[Puzzle]:
    """`count` puzzles spread evenly over the list (so over the seeds too)."""
    if len(puzzles) <= count:
        return list(puzzles)
    step = len(puzzles) / count
    return [puzzles[int(i * step)] for i in range(count)]


def player_view(puzzle: Puzzle) -> str:
    """The puzzle's answer as a player sees it revealed, one group a line."""
    lines = [f"{group.theme}: {' '.join(group.words)}" for group in puzzle.groups]
    return "\n".join([f"{puzzle.label}", *(f"  {line}" for line in lines)])


def format_report(report: dict[str, Any]) -> str:
    columns = {f"seed {seed}": figures for seed, figures in report["seeds"].items()}
    columns["all"] = report["overall"]
    lines = [_row("", list(columns)), _row("puzzles", [f["puzzles"] for f in columns.values()])]
    lines += _section("membership", columns, MEMBERSHIP_ROWS, "membership")
    lines += _section("solver", columns, SOLVER_ROWS, "solver")
    lines += _section("duplicates", columns, DUPLICATE_ROWS, "duplicates")
    baselines = {name: figures["baseline_top4"] for name, figures in columns.items()}
    skipped = report["overall"]["baseline_top4"].get("skipped")
    if skipped:
        lines += ["", f"baseline (top 4 per theme): skipped, {skipped}"]
    else:
        lines += ["", "baseline: each theme's top 4 ranked candidates, same themes"]
        lines += _section("membership", baselines, MEMBERSHIP_ROWS[:-1], "membership")
        lines += _section("solver", baselines, SOLVER_ROWS, "solver")
        lines += _section("duplicates", baselines, DUPLICATE_ROWS, "duplicates")
    levels = {name: f["difficulty_levels"] for name, f in columns.items()}
    lines += ["", "difficulty levels"]
    if levels["all"] is None:
        lines.append("  none in the outputs (no per-group or per-puzzle difficulty field)")
    else:
        for name, figures in levels.items():
            shown = (
                "none"
                if figures is None
                else f"per group {figures['per_group']}, per puzzle {figures['per_puzzle']}"
            )
            lines.append(f"  {name}: {shown}")
    duplicates = report["overall"]["duplicates"]
    lines += ["", "same variant key, examples:"]
    lines += [f"  {example}" for example in duplicates["same_variant_examples"]] or ["  none"]
    lines += ["tiles that are forms of a theme word, examples:"]
    lines += [f"  {example}" for example in duplicates["theme_word_form_examples"]] or ["  none"]
    lines += ["", "sample puzzles:"] + report["samples"]
    return "\n".join(lines)


#: (label, key, how to show it) for the report's rows; shares show as percentages.
MEMBERSHIP_ROWS = (
    ("words that are theme members, primary", "member_share_primary", "share"),
    ("  with secondary senses", "member_share_with_secondary", "share"),
    ("  of words whose theme is a category", "member_share_of_category_words_primary", "share"),
    ("    with secondary senses", "member_share_of_category_words_with_secondary", "share"),
    ("  as they stand (no forms), primary", "exact_member_share_primary", "share"),
    ("groups all members, primary", "group_share_all_members_primary", "share"),
    ("  with secondary senses", "group_share_all_members_with_secondary", "share"),
    ("themes that are lexicon categories", "theme_share_categories", "share"),
)
SOLVER_ROWS = (
    ("solver finds the intended split", "share_intended_split_found", "share"),
    ("ambiguous", "share_ambiguous", "share"),
    ("margin, median", "margin_median", "number"),
    ("margin, p10", "margin_p10", "number"),
    ("solver difficulty [0, 1], median", "difficulty_median", "number"),
    ("solver difficulty [0, 1], p90", "difficulty_p90", "number"),
)
DUPLICATE_ROWS = (
    ("tile pairs with one variant key", "same_variant_pairs", "number"),
    ("  puzzles with such a pair", "puzzles_with_same_variant_pair", "number"),
    ("tiles that are forms of a theme word", "theme_word_forms", "number"),
    ("  puzzles with such a tile", "puzzles_with_theme_word_form", "number"),
)


def _section(
    title: str, columns: dict[str, Any], rows: Iterable[tuple[str, str, str]], key: str
) -> list[str]:
    lines = ["", title]
    for label, name, kind in rows:
        values = [figures[key].get(name) for figures in columns.values()]
        shown = [
            "-" if value is None else f"{100 * value:.1f}%" if kind == "share" else str(value)
            for value in values
        ]
        lines.append(_row(f"  {label}", shown))
    return lines


def _row(label: str, values: Sequence[object]) -> str:
    return f"{label:<44}" + "".join(f"{value!s:>10}" for value in values)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


if __name__ == "__main__":
    raise SystemExit(main())
