"""The word choice: swap margins, the local search, and the lexicon's rules for a grid."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pytest

from asyncpipe.puzzle.lexicon import Category, Lexicon
from asyncpipe.puzzle.selection import (
    PuzzleSelection,
    _moves,
    _trial_similarities,
    improve_groups,
    swap_margin,
    swap_margins,
)
from asyncpipe.puzzle.solver import best_splits, solver_verdict
from asyncpipe.puzzle.vectors import unit_rows
from tests.puzzle.grids import INTENDED, clustered, cosines, random_centres


def _total(similarity: np.ndarray, labels: np.ndarray) -> float:
    same = labels[:, None] == labels[None, :]
    return float(np.triu(similarity * same, k=1).sum())


def _swap_margin_by_hand(similarity: np.ndarray, labels: np.ndarray) -> float:
    """Every swap of two words of different groups, each total summed from scratch."""
    base = _total(similarity, labels)
    losses = []
    for x, y in combinations(range(len(labels)), 2):
        if labels[x] == labels[y]:
            continue
        swapped = labels.copy()
        swapped[x], swapped[y] = labels[y], labels[x]
        losses.append(base - _total(similarity, swapped))
    return min(losses)


@pytest.mark.parametrize("seed", range(12))
def test_swap_margin_is_the_smallest_loss_of_any_swap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    similarity = cosines(rng.normal(size=(16, 8)))
    labels = np.repeat(np.arange(4), 4)
    assert swap_margin(similarity, labels) == pytest.approx(
        _swap_margin_by_hand(similarity, labels), abs=1e-9
    )


def _swap_margins_over_the_full_loss(similarities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The loss of every ordered pair of words, then the smallest of different groups:
    how `swap_margins` was first written, the arithmetic its choices were made with."""
    onehot = np.eye(int(labels.max()) + 1)[labels]
    summed = similarities @ onehot
    words = np.arange(len(labels))
    own = summed[:, words, labels] - similarities[:, words, words]
    to_their_group = summed[:, :, labels]
    loss = (
        own[:, :, None]
        + own[:, None, :]
        - to_their_group
        - to_their_group.transpose(0, 2, 1)
        + 2 * similarities
    )
    return np.asarray(loss[:, labels[:, None] != labels[None, :]].min(axis=1))


@pytest.mark.parametrize("seed", range(6))
def test_swap_margins_are_those_of_the_full_loss_matrix_bit_for_bit(seed: int) -> None:
    # A margin that moved in the last bit could flip a tie between two moves.
    rng = np.random.default_rng(seed)
    grids = np.stack([cosines(rng.normal(size=(16, 12))) for _ in range(40)])
    labels = np.repeat(np.arange(4), 4)
    assert np.array_equal(
        swap_margins(grids, labels), _swap_margins_over_the_full_loss(grids, labels)
    )


def _moves_one_position_at_a_time(
    grid: np.ndarray,
    starts: np.ndarray,
    pools: list[np.ndarray],
    clashes: np.ndarray,
    forbidden: list[set[frozenset[int]]],
) -> list[tuple[int, int]]:
    """The local search's moves listed position by position, as it first did."""
    on_grid = np.zeros(len(clashes), dtype=bool)
    on_grid[grid] = True
    clash_count = clashes[:, grid].sum(axis=1)
    moves: list[tuple[int, int]] = []
    for index, pool in enumerate(pools):
        free = pool[~on_grid[pool]]
        for position in range(starts[index], starts[index + 1]):
            for row in free[clash_count[free] - clashes[free, grid[position]] == 0]:
                others = [int(r) for r in grid[starts[index] : starts[index + 1]]]
                others.remove(int(grid[position]))
                if frozenset([*others, int(row)]) not in forbidden[index]:
                    moves.append((position, int(row)))
    return moves


@pytest.mark.parametrize("seed", range(8))
def test_the_moves_of_a_round_come_in_the_order_of_positions_then_pools(seed: int) -> None:
    # The first of equal margins wins: the moves must keep their order.
    rng = np.random.default_rng(seed)
    pools = [np.arange(8 * g, 8 * g + 8) for g in range(4)]
    grid = np.concatenate([rng.permutation(pool)[:4] for pool in pools])
    starts = np.arange(0, 17, 4)
    clashes = rng.random((32, 32)) < 0.02
    clashes |= clashes.T
    np.fill_diagonal(clashes, False)
    forbidden: list[set[frozenset[int]]] = [set() for _ in pools]
    for index, pool in enumerate(pools):
        staying = [int(row) for row in grid[4 * index + 1 : 4 * index + 4]]
        forbidden[index] = {frozenset([*staying, int(row)]) for row in rng.choice(pool, 3)}

    positions, rows = _moves(grid, starts, pools, clashes, forbidden)

    listed = list(zip(positions.tolist(), rows.tolist(), strict=True))
    assert listed == _moves_one_position_at_a_time(grid, starts, pools, clashes, forbidden)
    assert listed  # the planted clashes and forbidden sets leave some moves


def test_each_trial_grid_gets_the_similarities_of_its_own_words() -> None:
    rng = np.random.default_rng(4)
    similarity = rng.normal(size=(30, 30))  # not symmetric: rows and columns must not mix
    grid = rng.permutation(30)[:16]
    positions = rng.integers(0, 16, size=50)
    rows = rng.integers(0, 30, size=50)
    trials = np.repeat(grid[None, :], 50, axis=0)
    trials[np.arange(50), positions] = rows

    gathered = similarity[trials[:, :, None], trials[:, None, :]]

    assert np.array_equal(_trial_similarities(similarity, grid, positions, rows), gathered)


@pytest.mark.parametrize("seed", range(12))
def test_the_exact_margin_never_exceeds_the_swap_margin(seed: int) -> None:
    """A swap is one of the rival splits, so the solver's margin is at most the swap margin."""
    words, _ = clustered(random_centres(4, 10, seed), noise=0.6, seed=seed)
    similarity = cosines(words)
    _, margin, _ = solver_verdict(best_splits(similarity, 4, 4), INTENDED)
    assert margin <= swap_margin(similarity, np.repeat(np.arange(4), 4)) + 1e-9


def _grid_margin(similarity: np.ndarray, groups: list[list[int]]) -> float:
    rows = [row for group in groups for row in group]
    return swap_margin(similarity[np.ix_(rows, rows)], np.repeat(np.arange(len(groups)), 4))


def test_the_local_search_trades_a_word_that_sits_between_groups() -> None:
    # Four clear groups of four pool words each, plus one word per pool that sits
    # half-way to the next group; the search starts with those and must drop them.
    centres = random_centres(4, 12, seed=3)
    words, _ = clustered(centres, noise=0.05, seed=3, size=4)
    between = (centres + np.roll(centres, -1, axis=0)) / 2
    vectors = np.concatenate([words, between])
    similarity = cosines(vectors)
    pools = [[16 + g, *range(4 * g, 4 * g + 4)] for g in range(4)]
    start = [[16 + g, 4 * g, 4 * g + 1, 4 * g + 2] for g in range(4)]
    no_clashes = np.zeros((20, 20), dtype=bool)
    before = _grid_margin(similarity, start)

    chosen = improve_groups(similarity, pools, start, no_clashes)

    assert chosen == [list(range(4 * g, 4 * g + 4)) for g in range(4)]
    after = _grid_margin(similarity, chosen)
    assert after > before


def test_the_local_search_keeps_the_start_when_nothing_is_better() -> None:
    words, _ = clustered(random_centres(4, 12, seed=5), noise=0.01, seed=5, size=5)
    similarity = cosines(words)
    pools = [list(range(5 * g, 5 * g + 5)) for g in range(4)]
    # Near-identical words in each group: no move gains more than float noise... or
    # it does, and then the margin must have grown.
    start = [pool[:4] for pool in pools]
    chosen = improve_groups(similarity, pools, start, np.zeros((20, 20), dtype=bool))
    for group, pool in zip(chosen, pools, strict=True):
        assert set(group) <= set(pool) and len(set(group)) == 4
        assert group == sorted(group)  # pool order kept


def test_the_local_search_never_puts_a_clashing_pair_on_the_grid() -> None:
    centres = random_centres(4, 12, seed=8)
    words, _ = clustered(centres, noise=0.05, seed=8, size=4)
    between = (centres + np.roll(centres, -1, axis=0)) / 2
    similarity = cosines(np.concatenate([words, between]))
    pools = [[16 + g, *range(4 * g, 4 * g + 4)] for g in range(4)]
    start = [[16 + g, 4 * g, 4 * g + 1, 4 * g + 2] for g in range(4)]
    clashes = np.zeros((20, 20), dtype=bool)
    # The best replacement of group 0 (row 3) clashes with a word of group 1 (row 4).
    clashes[3, 4] = clashes[4, 3] = True

    chosen = improve_groups(similarity, pools, start, clashes)

    grid = [row for group in chosen for row in group]
    assert not (3 in grid and 4 in grid)


def _planted() -> Lexicon:
    return Lexicon.of(
        [
            Category("Birds", ("eagle", "hawk", "owl", "robin", "wren", "crane", "falcon")),
            Category("Birds of prey", ("eagle", "hawk", "owl", "falcon", "kite")),
            Category("Machines", ("crane", "lathe", "press", "pump", "drill", "loom")),
            Category("Trees", ("oak", "elm", "ash", "pine", "birch")),
        ]
    )


def _selection(lexicon: Lexicon, categories: dict[str, str]) -> PuzzleSelection:
    def no_vectors(theme: str, words: object) -> np.ndarray:
        raise AssertionError("the rules need no vectors")

    return PuzzleSelection(lexicon, categories, no_vectors, lambda *_: False, max_overlap=0.2)


def test_categories_sharing_much_conflict_and_a_small_overlap_does_not() -> None:
    lexicon = _planted()
    names = {name: name for name in lexicon.categories}
    selection = _selection(lexicon, names)
    assert selection.conflict("Birds", "Birds of prey")  # 4 of 5 shared
    assert not selection.conflict("Birds", "Machines")  # crane only: 1 < 0.2 x 6
    assert not selection.conflict("Birds", "Trees")
    assert not selection.conflict("Birds", "A neighbour theme")  # no category: never


def test_a_word_of_another_theme_of_the_grid_belongs_elsewhere() -> None:
    lexicon = _planted()
    selection = _selection(lexicon, {"Birds": "Birds", "Machines": "Machines"})
    assert selection.belongs_elsewhere("crane", "Birds", "Machines")
    assert not selection.belongs_elsewhere("robin", "Birds", "Machines")


def test_look_alike_words_clash() -> None:
    selection = _selection(_planted(), {})
    assert selection.clash("bus", "buses")
    assert selection.clash("burger", "hamburger")
    assert selection.clash("metre", "meter")
    assert not selection.clash("oak", "pine")


def test_kin_in_the_lexicon_clash() -> None:
    lexicon = Lexicon.of(
        [
            Category(
                "Appliances",
                ("refrigerator", "fridge", "oven", "toaster"),
                kin=(("fridge", "refrigerator"),),
            )
        ]
    )
    selection = _selection(lexicon, {})
    assert selection.clash("refrigerator", "fridge")
    assert selection.clash("Fridge", "refrigerator")
    assert not selection.clash("oven", "toaster")


def test_the_shipped_lexicon_knows_synonyms_and_kinds_of_members() -> None:
    from asyncpipe.io.lexicon_file import load_lexicon

    lexicon = load_lexicon()
    assert lexicon.are_kin("doughnut", "donut")
    assert lexicon.are_kin("fridge", "refrigerator")
    assert lexicon.are_kin("mumbai", "bombay")
    assert not lexicon.are_kin("oak", "pine")


def test_themes_whose_names_share_a_word_conflict() -> None:
    selection = _selection(_planted(), {})
    assert selection.conflict("Capitals of Asia", "Countries of Asia")
    assert selection.conflict("Shades of red", "Shades of blue")
    assert selection.conflict("Gods of Greek myth", "Norse gods")  # god, gods
    assert not selection.conflict("Trees", "Rivers")
    assert not selection.conflict("Birds of prey", "Beasts of burden")  # "of" is no word


def test_a_grid_left_near_ambiguous_searches_a_pool_twice_as_wide() -> None:
    # Each theme's six best ranked words sit half-way to one of the other themes; its
    # clean members come after them. Within six words no clear grid exists.
    centres = random_centres(4, 16, seed=11)
    rng = np.random.default_rng(11)
    table: dict[str, np.ndarray] = {}
    pools: list[list[str]] = []
    for index, centre in enumerate(centres):
        between = [f"b{index}{n}" for n in range(6)]
        clean = [f"c{index}{n}" for n in range(4)]
        for n, word in enumerate(between):
            other = centres[(index + 1 + n % 3) % 4]
            table[word] = (centre + other) / 2 + 0.02 * rng.normal(size=16)
        for word in clean:
            table[word] = centre + 0.02 * rng.normal(size=16)
        pools.append(between + clean)
    themes = ["T0", "T1", "T2", "T3"]
    lexicon = Lexicon.of([])

    def vectors(theme: str, words: object) -> np.ndarray:
        return np.array([table[word] for word in words])  # type: ignore[attr-defined]

    selection = PuzzleSelection(lexicon, {}, vectors, lambda *_: False, pool_size=6)
    start = [pool[:4] for pool in pools]
    narrow = selection._choose(themes, pools, start, 6)
    assert selection._near_ambiguous(themes, narrow)
    wide = selection.choose(themes, pools, start)

    def margin(groups: list[list[str]]) -> float:
        words = [word for group in groups for word in group]
        return swap_margin(cosines(np.array([table[w] for w in words])), np.repeat(range(4), 4))

    assert margin(wide) > margin(narrow)
    assert any(word.startswith("c") for group in wide for word in group)  # beyond the sixth
    assert not any(word.startswith("c") for group in narrow for word in group)


def test_the_clash_matrix_of_a_pool_gives_the_verdict_of_each_pair() -> None:
    lexicon = Lexicon.of(
        [
            Category(
                "Appliances",
                ("refrigerator", "fridge", "oven", "toaster", "kettle"),
                kin=(("fridge", "refrigerator"),),
            ),
            Category("Snacks", ("doughnut", "donut", "crisps"), kin=(("donut", "doughnut"),)),
        ]
    )
    selection = _selection(lexicon, {})
    words = ["Fridge", "oven", "refrigerator", "bus", "buses", "donut", "oven", "doughnut"]
    expected = np.array(
        [
            [i != j and selection.clash(a, b) for j, b in enumerate(words)]
            for i, a in enumerate(words)
        ]
    )
    assert np.array_equal(selection._clash_matrix(words), expected)
    assert expected[0, 2] and expected[1, 6] and expected[3, 4] and expected[5, 7]


def test_the_unit_rows_kept_between_questions_are_those_of_the_stacked_vectors() -> None:
    rng = np.random.default_rng(6)
    table = {
        (theme, word): rng.normal(size=3072).astype(np.float32)
        for theme in ("T0", "T1")
        for word in (f"w{n}" for n in range(300))
    }

    def vectors(theme: str, words: Sequence[str]) -> np.ndarray:
        return np.array([table[(theme, word)] for word in words])

    selection = PuzzleSelection(Lexicon.of([]), {}, vectors, lambda *_: False)
    for _ in range(6):  # hits, misses, and the oldest rows let go past the limit
        themes = ["T0", "T1"]
        groups = [[f"w{n}" for n in rng.choice(300, 90, replace=False)] for _ in themes]
        stacked = np.concatenate([vectors(t, g) for t, g in zip(themes, groups, strict=True)])
        assert np.array_equal(
            selection._unit_rows(themes, groups), unit_rows(stacked.astype(np.float64))
        )
