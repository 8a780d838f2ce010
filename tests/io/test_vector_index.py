"""asyncpipe.io.vector_index: the older index format on disk, and the bundled GloVe index."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from asyncpipe.errors import InputError
from asyncpipe.io.vector_index import (
    LEGACY_METADATA,
    LEGACY_VECTORS,
    LEGACY_VOCABULARY,
    VocabularyIndex,
    load_index,
    load_legacy_index,
)
from tests.io.legacy_index import write_legacy_index

WORDS = ["Apple", "banana", "CHERRY", "date", "elder"]
VECTORS = np.arange(len(WORDS) * 6, dtype=np.float32).reshape(len(WORDS), 6) / 7.0


@pytest.fixture
def index_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "themes_index"
    write_legacy_index(folder, WORDS, VECTORS)
    return folder


def _input_error(folder: Path, names: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_legacy_index(folder)
    message = str(caught.value)
    assert str(names) in message, message
    return message


def _vector(index: VocabularyIndex, word: str) -> np.ndarray:
    vector = index.vector_of(word)
    assert vector is not None, word
    return vector


def _text_vector(index: VocabularyIndex, text: str) -> np.ndarray:
    vector = index.text_vector(text)
    assert vector is not None, text
    return vector


# --- the older format -------------------------------------------------------------------


def test_written_index_loads_back_with_the_same_vectors_and_lowercased_words(
    index_folder: Path,
) -> None:
    index = load_legacy_index(index_folder)
    assert index.words == ("apple", "banana", "cherry", "date", "elder")
    assert index.vectors.dtype == np.float32
    np.testing.assert_array_equal(index.vectors, VECTORS)
    assert index.dimension == 6
    assert len(index) == 5
    assert index.name == str(index_folder)


def test_written_index_has_the_older_layout(index_folder: Path) -> None:
    data = (index_folder / LEGACY_VECTORS).read_bytes()
    assert struct.unpack_from("<II", data) == (5, 6)
    assert len(data) == 8 + 5 * 6 * 4
    assert json.loads((index_folder / LEGACY_VOCABULARY).read_text()) == WORDS
    assert json.loads((index_folder / LEGACY_METADATA).read_text()) == {"count": 5, "dimension": 6}


def test_loaded_index_passes_the_metadata_through(index_folder: Path) -> None:
    assert load_legacy_index(index_folder).metadata == {"count": 5, "dimension": 6}


def test_an_index_without_a_metadata_file_loads_with_empty_metadata(index_folder: Path) -> None:
    (index_folder / LEGACY_METADATA).unlink()
    assert load_legacy_index(index_folder).metadata == {}


def test_loaded_index_finds_rows_and_vectors_by_lowercase_word(index_folder: Path) -> None:
    index = load_legacy_index(index_folder)
    assert index.row_of("cherry") == 2
    assert index.row_of("CHERRY") is None
    np.testing.assert_array_equal(index.vector_of("apple"), VECTORS[0])


def test_load_index_of_a_folder_reads_the_older_format(index_folder: Path) -> None:
    assert load_index(index_folder).words == load_legacy_index(index_folder).words


def test_a_missing_index_folder_is_an_input_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "absent"
    assert "not found" in _input_error(folder, folder)


def test_a_missing_vector_file_is_an_input_error_naming_it(index_folder: Path) -> None:
    (index_folder / LEGACY_VECTORS).unlink()
    _input_error(index_folder, index_folder / LEGACY_VECTORS)


@pytest.mark.parametrize("name", [LEGACY_VECTORS, LEGACY_VOCABULARY, LEGACY_METADATA])
def test_a_directory_in_place_of_an_index_file_is_an_input_error_naming_it(
    index_folder: Path, name: str
) -> None:
    (index_folder / name).unlink()
    (index_folder / name).mkdir()
    assert "is a directory" in _input_error(index_folder, index_folder / name)


def test_a_vector_file_shorter_than_its_header_is_an_input_error(index_folder: Path) -> None:
    (index_folder / LEGACY_VECTORS).write_bytes(b"\x05\x00\x00")
    message = _input_error(index_folder, index_folder / LEGACY_VECTORS)
    assert "too short" in message


def test_a_header_count_that_does_not_match_the_file_size_is_an_input_error(
    index_folder: Path,
) -> None:
    path = index_folder / LEGACY_VECTORS
    data = bytearray(path.read_bytes())
    data[0:4] = struct.pack("<I", 6)
    path.write_bytes(bytes(data))
    message = _input_error(index_folder, path)
    assert "6 x 6" in message
    assert f"{len(data)} bytes" in message


def test_a_header_dimension_that_does_not_match_the_file_size_is_an_input_error(
    index_folder: Path,
) -> None:
    path = index_folder / LEGACY_VECTORS
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 7)
    path.write_bytes(bytes(data))
    assert "5 x 7" in _input_error(index_folder, path)


def test_a_truncated_vector_file_is_an_input_error(index_folder: Path) -> None:
    path = index_folder / LEGACY_VECTORS
    path.write_bytes(path.read_bytes()[:-4])
    _input_error(index_folder, path)


def test_a_zero_dimension_header_is_an_input_error(index_folder: Path) -> None:
    path = index_folder / LEGACY_VECTORS
    path.write_bytes(struct.pack("<II", 5, 0))
    _input_error(index_folder, path)


def test_a_vocabulary_longer_than_the_vectors_is_an_input_error(index_folder: Path) -> None:
    path = index_folder / LEGACY_VOCABULARY
    path.write_text(json.dumps([*WORDS, "fig"]), encoding="utf-8")
    message = _input_error(index_folder, path)
    assert "6 words" in message
    assert "5 vectors" in message


def test_a_vocabulary_shorter_than_the_vectors_is_an_input_error(index_folder: Path) -> None:
    path = index_folder / LEGACY_VOCABULARY
    path.write_text(json.dumps(WORDS[:4]), encoding="utf-8")
    assert "4 words" in _input_error(index_folder, path)


@pytest.mark.parametrize(
    "vocabulary",
    [{"apple": 0}, ["apple", "banana", 3, "date", "elder"], "apple banana", None],
    ids=["mapping", "number-in-list", "string", "null"],
)
def test_a_vocabulary_that_is_not_a_json_list_of_strings_is_an_input_error(
    index_folder: Path, vocabulary: object
) -> None:
    path = index_folder / LEGACY_VOCABULARY
    path.write_text(json.dumps(vocabulary), encoding="utf-8")
    assert "list of words" in _input_error(index_folder, path)


def test_a_vocabulary_that_is_not_json_is_an_input_error(index_folder: Path) -> None:
    path = index_folder / LEGACY_VOCABULARY
    path.write_text("apple\nbanana\n", encoding="utf-8")
    assert "not valid JSON" in _input_error(index_folder, path)


def test_a_missing_vocabulary_file_is_an_input_error(index_folder: Path) -> None:
    (index_folder / LEGACY_VOCABULARY).unlink()
    _input_error(index_folder, index_folder / LEGACY_VOCABULARY)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_vector_values_are_an_input_error(tmp_path: Path, bad_value: float) -> None:
    vectors = VECTORS.copy()
    vectors[3, 2] = bad_value
    folder = tmp_path / "index"
    write_legacy_index(folder, WORDS, vectors)
    assert "non-finite" in _input_error(folder, folder / LEGACY_VECTORS)


def test_vectors_and_words_of_different_lengths_cannot_form_an_index() -> None:
    with pytest.raises(InputError):
        VocabularyIndex("hand-made", ("apple", "banana"), np.zeros((3, 4), dtype=np.float32))


def test_the_first_of_two_equal_words_owns_the_row() -> None:
    vectors = np.eye(3, dtype=np.float32)
    index = VocabularyIndex("hand-made", ("apple", "pear", "apple"), vectors)
    assert index.row_of("apple") == 0


# --- text vectors -----------------------------------------------------------------------


@pytest.fixture
def tiny_index() -> VocabularyIndex:
    words = ("the", "sea", "birds", "of", "fish")
    vectors = np.array([[9, 9, 9], [1, 0, 0], [0, 2, 0], [5, 5, 5], [0, 0, 4]], dtype=np.float32)
    return VocabularyIndex("tiny", words, vectors)


def test_text_vector_of_several_words_is_the_mean_of_their_vectors(
    tiny_index: VocabularyIndex,
) -> None:
    np.testing.assert_allclose(_text_vector(tiny_index, "Sea birds"), [0.5, 1.0, 0.0])


def test_text_vector_leaves_out_stopwords_when_there_are_other_words(
    tiny_index: VocabularyIndex,
) -> None:
    np.testing.assert_allclose(_text_vector(tiny_index, "The birds of the sea"), [0.5, 1.0, 0.0])


def test_text_vector_of_stopwords_only_uses_the_stopwords(tiny_index: VocabularyIndex) -> None:
    np.testing.assert_allclose(_text_vector(tiny_index, "The"), [9, 9, 9])


def test_text_vector_ignores_unknown_words(tiny_index: VocabularyIndex) -> None:
    np.testing.assert_allclose(_text_vector(tiny_index, "Flying fish"), [0, 0, 4])


def test_text_vector_of_only_unknown_words_is_none(tiny_index: VocabularyIndex) -> None:
    assert tiny_index.text_vector("Unicorns") is None
    assert tiny_index.text_vector("") is None


# --- the bundled GloVe index ------------------------------------------------------------


def test_glove_has_400000_words_of_50_dimensions(glove: VocabularyIndex) -> None:
    assert len(glove) == 400_000
    assert glove.dimension == 50
    assert glove.vectors.shape == (400_000, 50)
    assert glove.vectors.dtype == np.float32


def test_glove_rows_are_in_frequency_order(glove: VocabularyIndex) -> None:
    assert glove.row_of("the") == 0
    apple, pomegranate = glove.row_of("apple"), glove.row_of("pomegranate")
    assert apple is not None and pomegranate is not None
    assert apple < pomegranate


def test_glove_row_of_and_vector_of_agree(glove: VocabularyIndex) -> None:
    row = glove.row_of("apple")
    assert row is not None
    assert glove.words[row] == "apple"
    np.testing.assert_array_equal(_vector(glove, "apple"), glove.vectors[row])


def test_glove_unknown_words_have_no_row_vector_or_text_vector(glove: VocabularyIndex) -> None:
    assert glove.row_of("qqzxvbnmw") is None
    assert glove.vector_of("qqzxvbnmw") is None
    assert glove.text_vector("Qqzxvbnmw Zzkqpwx") is None


def test_glove_text_vector_of_a_theme_is_the_mean_of_its_word_vectors(
    glove: VocabularyIndex,
) -> None:
    expected = (_vector(glove, "musical") + _vector(glove, "instruments")) / 2
    np.testing.assert_allclose(_text_vector(glove, "Musical instruments"), expected, rtol=1e-5)


def test_glove_text_vector_leaves_out_stopwords(glove: VocabularyIndex) -> None:
    content = ("fictional", "characters", "sea")
    expected = sum(_vector(glove, word) for word in content) / len(content)
    actual = _text_vector(glove, "Fictional characters by the sea")
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_glove_text_vector_ignores_an_unknown_word_beside_known_ones(
    glove: VocabularyIndex,
) -> None:
    actual = _text_vector(glove, "Qqzxvbnmw birds")
    np.testing.assert_allclose(actual, _vector(glove, "birds"), rtol=1e-6)
