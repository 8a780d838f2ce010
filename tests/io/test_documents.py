"""The shapes of final_puzzles.json and of the embedding table rows, built from hand-made results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.io.documents import (
    SCORE_DECIMALS,
    all_embeddings_blocks,
    distribution,
    embedding_analysis_as_written,
    embedding_analysis_document,
    final_puzzles_as_written,
    final_puzzles_document,
    puzzle_embeddings_blocks,
    quality_report,
)
from asyncpipe.io.files import write_json
from asyncpipe.io.tables import EmbeddingRows
from asyncpipe.puzzle.assembly import Group, Puzzle
from asyncpipe.puzzle.difficulty import PUZZLE_LABELS
from asyncpipe.puzzle.embedded import EmbeddedTheme, VectorRows
from asyncpipe.puzzle.ranking import cosine_to, rank_candidates
from asyncpipe.puzzle.scoring import PuzzleScore, score_puzzle


def group(theme: str, words: list[str], first_score: float) -> Group:
    scores = tuple(first_score - 0.1 * position for position in range(len(words)))
    return Group(theme, tuple(words), scores)


PUZZLES = (
    Puzzle(
        (
            group("Birds", ["sparrow", "eagle", "robin", "wren"], 0.9123456789),
            group("Fruit", ["apple", "pear", "plum", "fig"], 0.8),
            group("Metals", ["iron", "zinc", "tin", "lead"], 0.71234549),
            group("Weather", ["rain", "snow", "fog", "hail"], 0.6),
        )
    ),
    Puzzle(
        (
            group("Trees", ["oak", "elm", "ash", "yew"], 0.95),
            group("Tools", ["saw", "drill", "hammer", "chisel"], 0.85),
            group("Dances", ["tango", "waltz", "salsa", "polka"], 0.75),
            group("Gems", ["ruby", "opal", "jade", "pearl"], 0.65),
        )
    ),
)


def test_final_puzzles_are_numbered_from_one_with_words_themes_and_scores() -> None:
    document = final_puzzles_document(PUZZLES, include_scores=True)

    assert list(document) == ["puzzle_1", "puzzle_2"]
    first = document["puzzle_1"]
    assert list(first) == ["words", "themes", "theme_similarity_scores"]
    assert first["themes"] == ["Birds", "Fruit", "Metals", "Weather"]
    assert first["words"] == [
        "sparrow",
        "eagle",
        "robin",
        "wren",
        "apple",
        "pear",
        "plum",
        "fig",
        "iron",
        "zinc",
        "tin",
        "lead",
        "rain",
        "snow",
        "fog",
        "hail",
    ]
    assert len(first["theme_similarity_scores"]) == 16
    assert all(type(score) is float for score in first["theme_similarity_scores"])
    assert document["puzzle_2"]["themes"] == ["Trees", "Tools", "Dances", "Gems"]


def test_final_puzzle_scores_are_rounded_to_six_decimals() -> None:
    scores = final_puzzles_document(PUZZLES, include_scores=True)["puzzle_1"][
        "theme_similarity_scores"
    ]

    assert scores[0] == 0.912346
    assert scores[1] == 0.812346
    assert scores[8] == 0.712345
    for score in scores:
        assert round(score, 6) == score
    # What reaches the file is the rounded number, not a long float.
    assert "0.912346," in json.dumps(scores)


def test_final_puzzles_omit_scores_when_include_scores_is_false() -> None:
    document = final_puzzles_document(PUZZLES, include_scores=False)

    for entry in document.values():
        assert list(entry) == ["words", "themes"]


def test_no_puzzles_make_an_empty_document() -> None:
    assert final_puzzles_document((), include_scores=True) == {}


def embedded_theme(theme: str, words: list[str], seed: int) -> EmbeddedTheme:
    generator = np.random.default_rng(seed)
    theme_vector = generator.normal(size=4).astype(np.float32)
    candidate_vectors = generator.normal(size=(len(words), 4)).astype(np.float32)
    scores = cosine_to(theme_vector, candidate_vectors)
    ranked = rank_candidates(theme, words, scores)
    return EmbeddedTheme(
        theme_vector, tuple(words), VectorRows.of(candidate_vectors), scores, ranked
    )


def concatenated(blocks: list[EmbeddingRows]) -> EmbeddingRows:
    """One table of all the blocks, as a reader of the written file sees it."""
    return EmbeddingRows(
        themes=[text for block in blocks for text in block.themes],
        words=[text for block in blocks for text in block.words],
        word_types=[text for block in blocks for text in block.word_types],
        similarities=[value for block in blocks for value in block.similarities],
        ranks=[value for block in blocks for value in block.ranks],
        vectors=np.concatenate([block.vectors for block in blocks]),
    )


def test_all_embeddings_rows_hold_each_theme_then_its_candidates_and_variants() -> None:
    embedded = {
        "Dance": embedded_theme("Dance", ["tango", "waltzes", "waltz", "salsa"], seed=1),
        "Fruit": embedded_theme("Fruit", ["apple", "pear"], seed=2),
    }

    blocks = list(all_embeddings_blocks(embedded))
    assert [len(block.themes) for block in blocks] == [5, 3]  # one block per theme
    rows = concatenated(blocks)

    assert list(rows.themes) == ["Dance"] * 5 + ["Fruit"] * 3
    assert list(rows.words) == [
        "Dance",
        "tango",
        "waltzes",
        "waltz",
        "salsa",
        "Fruit",
        "apple",
        "pear",
    ]
    assert rows.word_types[0] == "theme" and rows.word_types[5] == "theme"
    assert rows.ranks[0] == 0 and rows.similarities[0] == 1.0
    dance = embedded["Dance"]
    waltz_rows = [
        1 + row for row, word in enumerate(dance.candidate_words) if word.startswith("waltz")
    ]
    assert sorted(rows.word_types[row] for row in waltz_rows) == ["candidate", "variant"]
    for row, word in enumerate(dance.candidate_words, start=1):
        if rows.word_types[row] == "candidate":
            assert dance.ranked.words[rows.ranks[row] - 1] == word
        else:
            assert rows.ranks[row] == -1
        assert rows.similarities[row] == float(dance.candidate_scores[row - 1])
    assert rows.vectors.dtype == np.float32
    np.testing.assert_array_equal(rows.vectors[0], dance.theme_vector)
    np.testing.assert_array_equal(rows.vectors[1:5], dance.candidate_vectors)


def test_puzzle_embeddings_rows_follow_the_grid_with_each_words_vector() -> None:
    embedded = {
        theme: embedded_theme(theme, words, seed=number)
        for number, (theme, words) in enumerate(
            [
                ("Birds", ["eagle", "wren", "robin", "sparrow", "crow"]),
                ("Fruit", ["fig", "pear", "plum", "apple"]),
            ]
        )
    }
    groups = tuple(
        Group(theme, result.ranked.words[:4], result.ranked.scores[:4])
        for theme, result in embedded.items()
    )

    blocks = list(puzzle_embeddings_blocks([Puzzle(groups)], embedded))
    assert len(blocks) == 1  # one block per puzzle
    rows = concatenated(blocks)

    assert list(rows.words) == [*groups[0].words, *groups[1].words]
    assert list(rows.word_types) == ["puzzle_1"] * 8
    assert list(rows.ranks) == [1, 2, 3, 4, 1, 2, 3, 4]
    for position, word in enumerate(rows.words):
        result = embedded[rows.themes[position]]
        source_row = result.candidate_words.index(word)
        np.testing.assert_array_equal(rows.vectors[position], result.candidate_vectors[source_row])


# --- difficulty levels -----------------------------------------------------------------


def planted_score(seed: int) -> PuzzleScore:
    """A real score of four clusters, one of them near another: its levels are all distinct."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, 32))
    centres[3] = centres[2] + 0.6 * rng.standard_normal(32)
    words = np.repeat(centres, 4, axis=0) + 0.5 * rng.standard_normal((16, 32))
    return score_puzzle(words, centres, [f"word{n}" for n in range(16)])


def test_final_puzzles_carry_group_and_puzzle_levels_next_to_the_quality() -> None:
    scores = [planted_score(1), planted_score(2)]

    document = final_puzzles_document(PUZZLES, include_scores=True, quality=scores)

    first = document["puzzle_1"]
    assert list(first) == [
        "words",
        "themes",
        "theme_similarity_scores",
        "group_levels",
        "group_colors",
        "difficulty_level",
        "difficulty_label",
        "quality",
    ]
    for entry, score in zip(document.values(), scores, strict=True):
        assert entry["group_levels"] == list(score.group_levels)
        assert sorted(entry["group_levels"]) == [1, 2, 3, 4]
        assert entry["group_colors"] == [
            {1: "yellow", 2: "green", 3: "blue", 4: "purple"}[level]
            for level in entry["group_levels"]
        ]
        assert entry["difficulty_level"] == score.puzzle_level
        assert entry["difficulty_label"] == PUZZLE_LABELS[score.puzzle_level - 1]
        # The existing quality fields keep their meaning; the group figures are added.
        assert entry["quality"]["difficulty"] == round(score.difficulty, 6)
        assert entry["quality"]["closeness"] == [round(value, 6) for value in score.closeness]
        assert entry["quality"]["group_ease"] == [round(value, 6) for value in score.group_ease]
    assert json.loads(json.dumps(document)) == document


def test_the_quality_report_summarises_the_levels_in_the_order_the_figures_give() -> None:
    scores = [planted_score(seed) for seed in range(12)]

    report = quality_report(scores)

    groups = report["group_levels"]
    assert [level["level"] for level in groups] == [1, 2, 3, 4]
    assert [level["color"] for level in groups] == ["yellow", "green", "blue", "purple"]
    assert [level["groups"] for level in groups] == [12] * 4
    eases = [level["mean_ease"] for level in groups]
    assert eases == sorted(eases, reverse=True)
    assert groups[0]["mean_closeness"] < groups[3]["mean_closeness"]
    puzzles = report["puzzle_levels"]
    assert [level["label"] for level in puzzles] == ["easy", "medium", "hard", "expert"]
    assert [level["from_difficulty"] for level in puzzles] == [0.0, 0.4, 0.6, 0.8]
    assert sum(level["puzzles"] for level in puzzles) == 12
    for level in puzzles:
        chosen = [score for score in scores if score.puzzle_level == level["level"]]
        assert level["puzzles"] == len(chosen)
        if chosen:
            assert min(s.difficulty for s in chosen) <= level["mean_difficulty"]
        else:
            assert level["mean_difficulty"] is None
    assert json.loads(json.dumps(report)) == report


def test_an_empty_batch_reports_every_level_with_nothing_in_it() -> None:
    report = quality_report([])

    assert [level["groups"] for level in report["group_levels"]] == [0] * 4
    assert report["group_levels"][0]["mean_ease"] is None
    assert [level["puzzles"] for level in report["puzzle_levels"]] == [0] * 4


@pytest.mark.parametrize("include_scores", [True, False])
def test_final_puzzles_made_as_written_are_the_bytes_of_the_whole_document(
    tmp_path: Path, include_scores: bool
) -> None:
    scores = [planted_score(1), planted_score(2)]
    below_bar = [False, True]
    whole, streamed = tmp_path / "whole.json", tmp_path / "streamed.json"

    write_json(whole, final_puzzles_document(PUZZLES, include_scores, scores, below_bar))
    write_json(streamed, final_puzzles_as_written(PUZZLES, include_scores, scores, below_bar))

    assert streamed.read_bytes() == whole.read_bytes()
    assert list(json.loads(streamed.read_text())) == ["puzzle_1", "puzzle_2"]


def test_the_embedding_analysis_made_as_written_is_the_bytes_of_the_whole_document(
    tmp_path: Path,
) -> None:
    embedded = {
        "Birds": embedded_theme("Birds", ["sparrow", "eagle", "robin", "wren", "crow"], 1),
        "Fruit": embedded_theme("Fruit", ["apple", "pear", "plum", "fig"], 2),
        "Metals": embedded_theme("Metals", ["iron", "zinc", "tin", "lead", "gold"], 3),
    }
    provider = {"name": "glove", "dimension": 8}
    whole, streamed = tmp_path / "whole.json", tmp_path / "streamed.json"

    write_json(whole, embedding_analysis_document(embedded, PUZZLES, provider))
    write_json(streamed, embedding_analysis_as_written(embedded, PUZZLES, provider))

    assert streamed.read_bytes() == whole.read_bytes()
    per_theme = json.loads(streamed.read_text())["per_theme_similarity"]
    assert list(per_theme) == ["Birds", "Fruit", "Metals"]
    assert per_theme["Birds"]["count"] == 5


def test_a_distribution_gives_each_figure_as_numpy_computes_it_alone() -> None:
    generator = np.random.default_rng(5)
    for size in (1, 2, 7, 45, 50):
        values = generator.uniform(-1, 1, size)
        figures = distribution(values)
        alone = {
            "mean": values.mean(),
            "std": values.std(),
            "min": values.min(),
            "p10": np.percentile(values, 10),
            "p25": np.percentile(values, 25),
            "median": np.median(values),
            "p75": np.percentile(values, 75),
            "p90": np.percentile(values, 90),
            "max": values.max(),
        }
        assert figures == {
            "count": size,
            **{name: round(float(value), SCORE_DECIMALS) for name, value in alone.items()},
        }
    assert distribution([]) == {"count": 0}
