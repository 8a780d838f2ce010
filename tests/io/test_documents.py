"""The shapes of final_puzzles.json and of the embedding table rows, built from hand-made results."""

from __future__ import annotations

import json

import numpy as np

from asyncpipe.io.documents import (
    all_embeddings_blocks,
    final_puzzles_document,
    puzzle_embeddings_blocks,
)
from asyncpipe.io.tables import EmbeddingRows
from asyncpipe.puzzle.assembly import Group, Puzzle
from asyncpipe.puzzle.embedded import EmbeddedTheme
from asyncpipe.puzzle.ranking import cosine_to, rank_candidates


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
    return EmbeddedTheme(theme_vector, tuple(words), candidate_vectors, scores, ranked)


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
