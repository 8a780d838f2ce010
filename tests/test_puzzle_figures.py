"""The puzzle-quality figures (benchmarks/puzzle_figures.py) on hand-made outputs whose
members, duplicates and verdicts are known, and once end to end on a real small batch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from benchmarks.puzzle_figures import (
    baseline_puzzles,
    figures_of_runs,
    format_report,
    puzzle_figures,
    read_puzzles,
)
from tests.support import REPO

# Trees: oak, maple are members, pines by its form, bay by a secondary sense.
# Fish: salmon, trout members, jack secondary, piano none. Archery is no category;
# arrow / arrows share a variant key. Birds: three members, and birding is a form of
# the theme word. 16 category words, 8 primary members, 10 with secondary senses.
FIRST = {
    "words": [
        "oak", "maple", "pines", "bay",
        "salmon", "trout", "jack", "piano",
        "spear", "bow", "arrow", "arrows",
        "eagle", "hawk", "crow", "birding",
    ],
    "themes": ["Trees", "Fish", "Archery", "Birds"],
    "quality": {"solver_optimal": True, "solver_margin": 0.5, "ambiguous": False, "difficulty": 0.2},
}  # fmt: skip
# Trees: four members. Kitchen, Cinema and Art are no categories; cinemas is a form of
# the theme word. Per-group difficulty levels in a list.
SECOND = {
    "words": [
        "apple", "olive", "cedar", "holly",
        "sink", "oven", "stove", "fridge",
        "movie", "drama", "comedy", "cinemas",
        "paint", "canvas", "easel", "brush",
    ],
    "themes": ["Trees", "Kitchen", "Cinema", "Art"],
    "difficulties": [1, 2, 3, 4],
    "quality": {"solver_optimal": False, "solver_margin": -0.1, "ambiguous": True, "difficulty": 1.0},
}  # fmt: skip


def _write_run(workdir: Path, document: dict[str, Any]) -> Path:
    final = workdir / "data" / "outputs" / "final_puzzles.json"
    final.parent.mkdir(parents=True)
    final.write_text(json.dumps(document))
    return workdir


def test_member_shares_count_forms_and_secondary_senses_apart(tmp_path: Path) -> None:
    puzzles = read_puzzles(
        _write_run(tmp_path, {"puzzle_1": FIRST, "puzzle_2": SECOND})
        / "data/outputs/final_puzzles.json"
    )

    membership = puzzle_figures(puzzles, load_lexicon())["membership"]

    assert (membership["words"], membership["category_words"], membership["groups"]) == (32, 16, 8)
    assert membership["members_primary"] == 12  # 8 + the second puzzle's four trees
    assert membership["members_with_secondary"] == 14  # bay and jack
    assert membership["members_exact_primary"] == 11  # pines is a member only by its form
    assert membership["member_share_primary"] == 0.375
    assert membership["member_share_of_category_words_primary"] == 0.75
    assert membership["member_share_of_category_words_with_secondary"] == 0.875
    assert membership["groups_all_members_primary"] == 1
    assert membership["groups_all_members_with_secondary"] == 2
    assert membership["theme_share_categories"] == 0.5


def test_duplicates_name_the_puzzle_and_the_words(tmp_path: Path) -> None:
    puzzles = read_puzzles(
        _write_run(tmp_path, {"puzzle_1": FIRST, "puzzle_2": SECOND})
        / "data/outputs/final_puzzles.json",
        prefix="seed 7 ",
    )

    duplicates = puzzle_figures(puzzles, load_lexicon())["duplicates"]

    assert duplicates["same_variant_pairs"] == 1
    assert duplicates["same_variant_examples"] == ["seed 7 puzzle_1: arrow / arrows"]
    assert duplicates["theme_word_forms"] == 2
    assert duplicates["puzzles_with_theme_word_form"] == 2
    assert duplicates["theme_word_form_examples"] == [
        "seed 7 puzzle_1: 'birding' in 'Birds'",
        "seed 7 puzzle_2: 'cinemas' in 'Cinema'",
    ]


def test_solver_verdicts_and_difficulty_levels_come_from_the_outputs(tmp_path: Path) -> None:
    first = dict(
        FIRST,
        groups=[
            {"theme": t, "words": FIRST["words"][4 * i : 4 * i + 4], "difficulty": level}
            for i, (t, level) in enumerate(zip(FIRST["themes"], [1, 1, 2, 4]))
        ],
    )
    puzzles = read_puzzles(
        _write_run(tmp_path, {"puzzle_1": first, "puzzle_2": SECOND})
        / "data/outputs/final_puzzles.json"
    )

    figures = puzzle_figures(puzzles, load_lexicon())

    assert figures["solver"]["share_intended_split_found"] == 0.5
    assert figures["solver"]["share_ambiguous"] == 0.5
    assert figures["solver"]["margin_median"] == pytest.approx(0.2)
    assert figures["difficulty_levels"] == {
        "per_group": {"1": 3, "2": 2, "3": 1, "4": 2},
        "per_puzzle": {},
    }


def test_outputs_without_difficulty_levels_report_none(tmp_path: Path) -> None:
    puzzles = read_puzzles(
        _write_run(tmp_path, {"puzzle_1": FIRST}) / "data/outputs/final_puzzles.json"
    )

    assert puzzle_figures(puzzles, load_lexicon())["difficulty_levels"] is None


def test_the_baseline_takes_each_theme_s_top_four_ranked_candidates(tmp_path: Path) -> None:
    workdir = _write_run(tmp_path, {"puzzle_1": SECOND})
    rng = np.random.default_rng(3)
    ranked = {
        "Trees": ["pine", "oak", "ash", "elm", "birch"],
        "Kitchen": ["sink", "oven", "stove", "fridge", "kettle"],
        "Cinema": ["movie", "drama", "comedy", "western", "actor"],
        "Art": ["paint", "canvas", "easel", "brush", "gallery"],
    }
    table = workdir / "data" / "cache" / "all_embeddings.csv"
    table.parent.mkdir(parents=True)
    with table.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["theme", "word", "word_type", "similarity_to_theme", "rank"]
            + [f"embedding_dim_{d}" for d in range(1, 9)]
        )
        for theme, words in ranked.items():
            centre = rng.normal(size=8)
            writer.writerow([theme, theme, "theme", 1.0, 0, *centre])
            writer.writerow([theme, f"{words[0]}s", "variant", 0.99, -1, *centre])  # never ranked
            for rank in (2, 1, 3, 5, 4):  # file order is not rank order
                word = words[rank - 1]
                writer.writerow(
                    [theme, word, "candidate", 0.9, rank, *(centre + 0.05 * rng.normal(size=8))]
                )

    baseline = baseline_puzzles(read_puzzles(workdir / "data/outputs/final_puzzles.json"), table)

    assert not isinstance(baseline, str)
    assert [group.words for group in baseline[0].groups] == [
        tuple(words[:4]) for words in ranked.values()
    ]
    assert baseline[0].entry["quality"]["solver_optimal"] is True
    assert "all_embeddings.csv" in str(baseline_puzzles(baseline, tmp_path / "all_embeddings.csv"))


def test_the_report_shows_each_seed_all_seeds_and_puzzles_as_players_see_them(
    tmp_path: Path,
) -> None:
    runs = {
        1: _write_run(tmp_path / "one", {"puzzle_1": FIRST}),
        2: _write_run(tmp_path / "two", {"puzzle_1": SECOND}),
    }

    report = figures_of_runs(runs, load_lexicon())
    text = format_report(report)

    assert report["overall"]["puzzles"] == 2
    assert report["seeds"]["1"]["membership"]["members_primary"] == 8
    assert report["seeds"]["2"]["membership"]["members_primary"] == 4
    assert report["overall"]["baseline_top4"]["skipped"].startswith("seed 1: no all_embeddings.csv")
    assert "Trees: oak maple pines bay" in text
    assert "Cinema: movie drama comedy cinemas" in text
    assert "37.5%" in text  # 12 of 32 words, over both seeds
    assert "seed 1: none" in text  # difficulty levels: only the second run has them


@pytest.mark.slow
def test_the_script_runs_a_real_batch_and_writes_its_figures(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"

    finished = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "puzzle_figures.py"),
            "--seeds",
            "5",
            "--count",
            "2",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    report = json.loads(figures.read_text())
    assert list(report["seeds"]) == ["5"]
    assert report["overall"]["puzzles"] == 2
    assert report["overall"]["solver"]["scored"] == 2
    assert report["overall"]["baseline_top4"]["puzzles"] == 2
    assert "sample puzzles:" in finished.stdout
