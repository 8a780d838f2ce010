"""Vectors for the scorer, the closer-to-another-theme test, and the batch quality report."""

from __future__ import annotations

import numpy as np

from asyncpipe.io.documents import quality_report
from asyncpipe.puzzle.assembly import Group, Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme, VectorRows
from asyncpipe.puzzle.quality import closer_elsewhere_in, puzzle_arrays
from asyncpipe.puzzle.ranking import cosine_to, rank_candidates
from asyncpipe.puzzle.scoring import score_puzzle


def embedded(
    theme_vector: list[float], words: list[str], vectors: list[list[float]]
) -> EmbeddedTheme:
    theme = np.asarray(theme_vector, dtype=np.float32)
    candidates = np.asarray(vectors, dtype=np.float32)
    scores = cosine_to(theme, candidates)
    return EmbeddedTheme(
        theme, tuple(words), VectorRows.of(candidates), scores, rank_candidates("t", words, scores)
    )


def test_a_word_nearer_another_theme_is_detected_and_a_word_at_home_is_not() -> None:
    themes = {
        "Birds": embedded([1, 0, 0], ["robin", "crane"], [[1, 0.1, 0], [0.4, 1, 0]]),
        "Machines": embedded([0, 1, 0], ["lever"], [[0, 1, 0.1]]),
    }
    closer = closer_elsewhere_in(themes)
    assert closer("crane", "Birds", "Machines")
    assert not closer("robin", "Birds", "Machines")
    assert not closer("lever", "Machines", "Birds")


def test_puzzle_arrays_follow_the_grid_and_feed_the_scorer() -> None:
    generator = np.random.default_rng(3)
    themes = {}
    for index, name in enumerate(["A", "B", "C", "D"]):
        centre = np.eye(4)[index]
        words = [f"{name.lower()}{n}" for n in range(5)]
        vectors = (centre + 0.05 * generator.normal(size=(5, 4))).tolist()
        themes[name] = embedded(centre.tolist(), words, vectors)
    groups = tuple(
        Group(name, result.ranked.words[:4], result.ranked.scores[:4])
        for name, result in themes.items()
    )
    puzzle = Puzzle(groups)

    word_vectors, theme_vectors = puzzle_arrays(puzzle, themes)

    assert word_vectors.shape == (16, 4) and theme_vectors.shape == (4, 4)
    assert word_vectors.dtype == np.float32
    first = themes["A"]
    row = first.candidate_words.index(puzzle.words[0])
    np.testing.assert_array_equal(word_vectors[0], first.candidate_vectors[row])
    score = score_puzzle(word_vectors, theme_vectors, puzzle.words)
    report = quality_report([score, score])
    assert report["puzzles_scored"] == 2
    assert report["solver_recovers_intended_grouping"] == 2 * score.solver_optimal
    assert report["difficulty"]["count"] == 2
    assert quality_report([])["difficulty"] == {"count": 0}
