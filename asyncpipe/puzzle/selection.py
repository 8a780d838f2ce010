"""Which themes may share a puzzle, and which members make each group: one clear solution.

A group's words must all be members of its theme, and the grid must have one clear
solution. Two rules keep a grid fair, and a search makes it clear:

- Themes whose categories share much (Birds and Birds of prey; Fish and Food fish),
  or whose names share a word (Capitals of Asia, Countries of Asia), never share a
  puzzle (`conflict`); a smaller overlap only keeps the shared words
  off that grid: a word that belongs to another theme of its puzzle, by any sense
  ("bass" under Fish beside Instruments), is never a tile (`belongs_elsewhere`).
- Among each theme's most typical members (`candidates.selection_pool`), a local
  search picks the four of each group that maximise the puzzle's swap margin
  (`swap_margin`): how much the intended grouping beats the best grouping that swaps
  two words between groups, in the provider's embedding space. That rival is the
  one an exact solver finds second nearly always; the exact margin is measured
  afterwards by the scorer (`asyncpipe.puzzle.scoring`).

Pure numpy, deterministic: the same inputs make the same choices.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from asyncpipe.puzzle.decoys import Decoy, unique
from asyncpipe.puzzle.history import NO_MEMORY, GroupMemory
from asyncpipe.puzzle.lexicon import Lexicon
from asyncpipe.puzzle.lookalikes import look_alike, look_alike_matrix
from asyncpipe.puzzle.solver import DEFAULT_AMBIGUITY_MARGIN
from asyncpipe.puzzle.vectors import unit_rows
from asyncpipe.puzzle.words import is_variant_of_theme, stopwords, theme_words, variant_key

#: A move must improve the margin by more than this to be taken: float noise never
#: trades a more typical word for a less typical one.
_MIN_GAIN = 1e-9
#: A grid whose swap margin is under this share of its gain searches a wider pool: twice
#: the solver's ambiguity margin (`asyncpipe.puzzle.solver.DEFAULT_AMBIGUITY_MARGIN`).
_NEAR_AMBIGUOUS = 2 * DEFAULT_AMBIGUITY_MARGIN
#: Placements of a decoy tried per pair of themes: the first few candidates that fit.
_DECOY_OPTIONS = 6
#: Unit vectors of (theme, word) kept for the next questions: a few puzzles' pools.
_UNIT_ROWS_KEPT = 256
#: Moves of the local search, at most: enough to replace every tile of a 4 x 4 grid once.
#: Real grids settle in two or three; the cap bounds the time in the worst case.
_MAX_ROUNDS = 16

#: Words in groups, as kept by `PuzzleSelection` (tuples: they are keys and shared).
_Groups = tuple[tuple[str, ...], ...]
#: What `PuzzleSelection.choose` and `place_decoys` were asked: themes and two word lists.
_ChoiceKey = tuple[tuple[str, ...], _Groups, _Groups]

#: Vectors of some of a theme's candidates (theme, words) -> words x D, in that order.
WordVectors = Callable[[str, Sequence[str]], np.ndarray]
#: Whether a word of one theme sits closer to another theme: (word, own theme, other theme).
CloserElsewhere = Callable[[str, str, str], bool]


def swap_margin(similarity: np.ndarray, labels: np.ndarray) -> float:
    """How much the grouping `labels` beats its best rival that swaps two words.

    A grouping's total is the sum of the pairwise similarities inside its groups
    (what the solver maximises). Swapping x (group i) with y (group j) changes the
    total by S[x, j] + S[y, i] - own[x] - own[y] - 2 sim[x, y], where S[x, j] is x's
    summed similarity to group j and own[x] = S[x, i] without x itself; the margin
    is the smallest loss over all swaps (negative when a swap wins).
    """
    return float(swap_margins(similarity[None, :, :], labels)[0])


def swap_margins(similarities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`swap_margin` of many grids at once (grids x words x words), one label order."""
    pairs = _SwapPairs.of(labels)
    grids = len(similarities)
    summed = (similarities @ pairs.onehot).reshape(grids, -1)  # grids x (words x groups)
    flat = similarities.reshape(grids, -1)
    own = summed[:, pairs.own] - flat[:, pairs.diagonal]
    # loss[x, y] = own[x] + own[y] - S[x, g(y)] - S[y, g(x)] + 2 sim[x, y], only for the
    # pairs of different groups, in the order of operations it always had: the minimum
    # of the same floats, bit for bit.
    loss = own[:, pairs.xs]
    loss += own[:, pairs.ys]
    loss -= summed[:, pairs.x_to_group_of_y]
    loss -= summed[:, pairs.y_to_group_of_x]
    loss += 2 * flat[:, pairs.x_with_y]
    return np.asarray(loss.min(axis=1))


@dataclass(frozen=True)
class _SwapPairs:
    """The index arrays `swap_margins` needs for one label order, into the rows of its
    flattened matrices: each word's own group and itself, and for the ordered pairs
    (x, y) of words in different groups, x and y, x's group of y, y's of x, and (x, y)."""

    onehot: np.ndarray
    own: np.ndarray
    diagonal: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    x_to_group_of_y: np.ndarray
    y_to_group_of_x: np.ndarray
    x_with_y: np.ndarray

    @staticmethod
    def of(labels: np.ndarray) -> _SwapPairs:
        return _swap_pairs(tuple(int(label) for label in labels))


@lru_cache(maxsize=64)
def _swap_pairs(labels: tuple[int, ...]) -> _SwapPairs:
    """Cached: every grid of a batch has the same labels, and the local search scores
    thousands of batches."""
    array = np.asarray(labels, dtype=np.int64)
    words, groups = len(array), int(array.max()) + 1
    everyone = np.arange(words)
    xs, ys = np.nonzero(array[:, None] != array[None, :])
    pairs = _SwapPairs(
        onehot=np.eye(groups)[array],
        own=everyone * groups + array,
        diagonal=everyone * (words + 1),
        xs=xs,
        ys=ys,
        x_to_group_of_y=xs * groups + array[ys],
        y_to_group_of_x=ys * groups + array[xs],
        x_with_y=xs * words + ys,
    )
    for field_value in vars(pairs).values():
        field_value.setflags(write=False)  # shared by every caller
    return pairs


def improve_groups(
    similarity: np.ndarray,
    pools: Sequence[Sequence[int]],
    chosen: Sequence[Sequence[int]],
    clashes: np.ndarray,
    forbidden: Sequence[Collection[frozenset[int]]] = (),
) -> list[list[int]]:
    """Local search: replace one word at a time with another of its group's pool while
    the swap margin grows; the best move of each round is taken (the first of equals).

    `similarity` covers every pool word (rows indexed by the pools' entries); `pools`
    list each group's allowed words best first, `chosen` the starting groups;
    `clashes[a, b]` says that rows a and b must not share the grid (two forms of one
    word, or words that look alike), and no move puts such a pair on it. Every move
    of a round is scored in one batch (`swap_margins`). `forbidden[i]`, when given,
    holds row sets group i must not become (a group published before), and no move
    makes one.
    """
    groups = [list(group) for group in chosen]
    labels = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    grid = np.asarray([row for group in groups for row in group])
    best = swap_margin(similarity[np.ix_(grid, grid)], labels)
    starts = np.cumsum([0] + [len(group) for group in groups])
    pool_rows = [np.asarray(pool, dtype=np.int64) for pool in pools]
    for _ in range(_MAX_ROUNDS):
        positions, rows = _moves(grid, starts, pool_rows, clashes, forbidden)
        if not len(rows):
            break
        margins = swap_margins(_trial_similarities(similarity, grid, positions, rows), labels)
        pick = int(np.argmax(margins))
        if margins[pick] <= best + _MIN_GAIN:
            break
        best = float(margins[pick])
        grid[positions[pick]] = rows[pick]
    # Keep each group in its pool's order (most typical first), as the ranking had it.
    result: list[list[int]] = []
    for index, pool in enumerate(pools):
        rank = {row: place for place, row in enumerate(pool)}
        group = grid[starts[index] : starts[index + 1]].tolist()
        result.append(sorted(group, key=rank.__getitem__))
    return result


def _trial_similarities(
    similarity: np.ndarray, grid: np.ndarray, positions: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """The similarities of each trial grid (grid with `rows[n]` at `positions[n]`):
    the grid's own, with one row and one column replaced (copies of the same floats
    a gather of every trial's words would give, in far less time)."""
    trials = np.repeat(similarity[np.ix_(grid, grid)][None], len(rows), axis=0)
    every = np.arange(len(rows))
    trials[every, positions, :] = similarity[rows[:, None], grid[None, :]]
    trials[every, :, positions] = similarity[grid[None, :], rows[:, None]]
    trials[every, positions, positions] = similarity[rows, rows]
    return trials


def _moves(
    grid: np.ndarray,
    starts: np.ndarray,
    pool_rows: Sequence[np.ndarray],
    clashes: np.ndarray,
    forbidden: Sequence[Collection[frozenset[int]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Every move of one round of `improve_groups` as (positions, rows), by position,
    then in pool order: a pool word may replace the word at a position of its group
    when it is not on the grid, clashes with no word staying there, and leaves the
    group no forbidden set."""
    on_grid = np.zeros(len(clashes), dtype=bool)
    on_grid[grid] = True
    clash_count = clashes[:, grid].sum(axis=1)
    positions: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for index, pool in enumerate(pool_rows):
        free = pool[~on_grid[pool]]
        span = np.arange(starts[index], starts[index + 1])
        # fits[p, r]: free row r clashes with no word of the grid but the one at span[p].
        fits = (clash_count[free][None, :] - clashes[np.ix_(free, grid[span])].T) == 0
        if index < len(forbidden) and forbidden[index]:
            for offset, position in enumerate(span):
                fits[offset, fits[offset]] = _not_forbidden(
                    free[fits[offset]], grid, int(position), starts, index, forbidden[index]
                )
        at, column = np.nonzero(fits)  # by position, then in pool order
        positions.append(span[at])
        rows.append(free[column])
    return np.concatenate(positions), np.concatenate(rows)


def _not_forbidden(
    fits: np.ndarray,
    grid: np.ndarray,
    position: int,
    starts: np.ndarray,
    index: int,
    forbidden: Collection[frozenset[int]],
) -> np.ndarray:
    """Whether each row of `fits`, put at `position`, leaves group `index` no forbidden set."""
    others = [int(row) for row in grid[starts[index] : starts[index + 1]]]
    others.remove(int(grid[position]))
    return np.asarray([frozenset([*others, int(row)]) not in forbidden for row in fits], dtype=bool)


def _frozen(groups: Sequence[Sequence[str]]) -> _Groups:
    return tuple(tuple(group) for group in groups)


def _choice_key(
    themes: Sequence[str], first: Sequence[Sequence[str]], second: Sequence[Sequence[str]]
) -> _ChoiceKey:
    return (tuple(themes), _frozen(first), _frozen(second))


def _ordered_pairs(count: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(count) for b in range(count) if a != b]


@lru_cache(maxsize=8192)
def _name_keys(theme: str) -> frozenset[str]:
    """The variant keys of a theme name's words, stopwords left out."""
    return frozenset(variant_key(word) for word in theme_words(theme) if word not in stopwords())


@dataclass
class PuzzleSelection:
    """The rules and the search for the themes of one batch (see the module docstring).

    `categories` maps each theme served by a lexicon category to that category;
    a theme without one (its candidates are neighbours) is judged by `closer_elsewhere`.

    One selection can serve every round of a batch (`asyncpipe.stages.planner`): it
    keeps what it worked out, the search's choices and decoys included, keyed by what
    was asked, and the rounds after the first ask mostly the same (the puzzles a spare
    round or a rebuild leaves as they were). That holds while each theme keeps the
    candidates and vectors it had when first asked about.
    """

    lexicon: Lexicon
    categories: Mapping[str, str]
    vectors: WordVectors
    closer_elsewhere: CloserElsewhere
    #: Categories sharing at least this share of the smaller one's members conflict.
    max_overlap: float = 0.2
    #: The best ranked candidates of each theme the search may use (members: the most
    #: typical; neighbours: the closest).
    pool_size: int = 6
    #: The published groups of the batch's categories (`asyncpipe.puzzle.history`): two
    #: tiles of one recent group never share a new group of that category again, and
    #: no group repeats one published before.
    history: GroupMemory = NO_MEMORY
    #: Red herrings wanted per puzzle (`quality.red_herrings`; see `place_decoys`).
    decoys: int = 0
    _conflicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _clashes: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _bridges: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _shares_a_candidate: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _kept_off: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict, repr=False)
    _units: OrderedDict[tuple[str, str], np.ndarray] = field(
        default_factory=OrderedDict, repr=False
    )
    _choices: dict[_ChoiceKey, _Groups] = field(default_factory=dict, repr=False)
    _placements: dict[_ChoiceKey, tuple[_Groups, tuple[Decoy, ...]]] = field(
        default_factory=dict, repr=False
    )

    def clash(self, a: str, b: str) -> bool:
        """Two words that must not share a grid: forms of one word, look-alikes
        (`asyncpipe.puzzle.lookalikes`: bus and buses, burger and hamburger), or kin in
        the lexicon (doughnut and donut, fridge and refrigerator)."""
        pair = (a, b) if a <= b else (b, a)
        if pair not in self._clashes:
            self._clashes[pair] = (
                a == b or look_alike(a, b) is not None or self.lexicon.are_kin(a, b)
            )
        return self._clashes[pair]

    def clashes_with_any(self, word: str, others: Iterable[str]) -> bool:
        """`clash` of the word with any of `others`, looked up in the cache first: the
        assembly asks this of every word it tries, against every word taken."""
        known = self._clashes
        for other in others:
            found = known.get((word, other) if word <= other else (other, word))
            if found is None:
                found = self.clash(word, other)
            if found:
                return True
        return False

    def conflict(self, a: str, b: str) -> bool:
        """Themes that must not share a puzzle: their names share a word ("Capitals of
        Asia", "Countries of Asia": one grid would hold two kinds of Asian place), or
        their categories overlap this much."""
        if _name_keys(a) & _name_keys(b):
            return True
        first, second = self.categories.get(a), self.categories.get(b)
        if first is None or second is None:
            return False
        pair = (first, second) if first <= second else (second, first)
        if pair not in self._conflicts:
            shared = len(self.lexicon.overlap(first, second))
            smaller = min(len(self.lexicon.members(first)), len(self.lexicon.members(second)))
            self._conflicts[pair] = first == second or (
                shared > 0 and shared >= self.max_overlap * max(1, smaller)
            )
        return self._conflicts[pair]

    def belongs_elsewhere(self, word: str, own: str, other: str) -> bool:
        """The word is a member of the other theme's category (by any sense), or, when
        that theme has no category, sits closer to it than to its own theme."""
        if other in self.categories:
            return self.is_member(word, other)
        return self.closer_elsewhere(word, own, other)

    def kept_off(self, theme: str, candidates: Sequence[str], other: str) -> frozenset[str]:
        """The candidates of `theme` that may not be tiles beside `other`: a form of its
        name, or a word that belongs to it (`belongs_elsewhere`).

        Cached per pair of themes (`candidates` must be the theme's, always the same):
        the assembly asks again for each theme it tries beside those taken.
        """
        pair = (theme, other)
        if pair not in self._kept_off:
            self._kept_off[pair] = frozenset(
                word
                for word in candidates
                if is_variant_of_theme(word, other) or self.belongs_elsewhere(word, theme, other)
            )
        return self._kept_off[pair]

    def shares_a_candidate(
        self, a: str, a_candidates: Sequence[str], b: str, b_candidates: Sequence[str]
    ) -> bool:
        """The themes `bridges`, and a candidate of one is a member of the other's
        category: a decoy could be placed between them (`place_decoys` checks the rest).

        Cached per pair of themes (the candidates must be the themes', always the same).
        """
        pair = (a, b) if a <= b else (b, a)
        if pair not in self._shares_a_candidate:
            self._shares_a_candidate[pair] = self.bridges(a, b) and (
                any(self.is_member(word, b) for word in a_candidates)
                or any(self.is_member(word, a) for word in b_candidates)
            )
        return self._shares_a_candidate[pair]

    def bridges(self, a: str, b: str) -> bool:
        """Two themes whose categories share a member, a primary one of at least one of
        them: a decoy could sit between them."""
        first, second = self.categories.get(a), self.categories.get(b)
        if first is None or second is None or first == second:
            return False
        pair = (first, second) if first <= second else (second, first)
        if pair not in self._bridges:
            # The host offers only its primary members: one of them must be the other's.
            one, other = (self.lexicon.category(name) for name in pair)
            self._bridges[pair] = bool(
                set(one.members) & {*other.members, *other.secondary}
                or set(other.members) & set(one.secondary)
            )
        return self._bridges[pair]

    def place_decoys(
        self,
        themes: Sequence[str],
        candidates: Sequence[Sequence[str]],
        groups: Sequence[Sequence[str]],
    ) -> tuple[list[list[str]], list[Decoy]]:
        """Up to `decoys` red herrings, each a candidate of one group that is also a
        member of another theme's category, swapped in for one of its group's words.

        A placement is kept only when the tiles can still be dealt to the themes by
        membership in exactly one way (`asyncpipe.puzzle.decoys.unique`), no tile clashes
        with another, no published group comes back, and the grid still beats every
        swap of two words in the provider's space. Of those, a decoy that is a primary
        member of the category it pretends to (teal among Shades of blue) wins over one
        by a later sense; then the wider swap margin.
        """
        key = _choice_key(themes, candidates, groups)
        if key not in self._placements:
            grid, placed = self._place_decoys(themes, candidates, groups)
            self._placements[key] = (_frozen(grid), tuple(placed))
        grid_kept, placed_kept = self._placements[key]
        return [list(group) for group in grid_kept], list(placed_kept)

    def _place_decoys(
        self,
        themes: Sequence[str],
        candidates: Sequence[Sequence[str]],
        groups: Sequence[Sequence[str]],
    ) -> tuple[list[list[str]], list[Decoy]]:
        grid = [list(group) for group in groups]
        placed: list[Decoy] = []
        for _ in range(self.decoys):
            best: tuple[tuple[bool, float], int, int, str, str] | None = None
            taken = {decoy.word for decoy in placed}
            for host, pretend in _ordered_pairs(len(themes)):
                if not self.bridges(themes[host], themes[pretend]):
                    continue
                for word, position in self._decoy_options(
                    themes, candidates, grid, host, pretend, taken
                ):
                    trial = [list(group) for group in grid]
                    trial[host][position] = word
                    margin = self._grid_margin(themes, trial)
                    if margin <= 0.0:
                        continue
                    category = self.categories[themes[pretend]]
                    rank = (word in self.lexicon.members(category), margin)
                    if best is None or rank > best[0]:
                        best = (rank, host, position, word, themes[pretend])
            if best is None:
                break
            _, host, position, word, pretends = best
            grid[host][position] = word
            placed.append(Decoy(word, themes[host], pretends))
        return grid, placed

    def _decoy_options(
        self,
        themes: Sequence[str],
        candidates: Sequence[Sequence[str]],
        grid: list[list[str]],
        host: int,
        pretend: int,
        placed: set[str],
    ) -> list[tuple[str, int]]:
        """(word, position in the host's group) placements that pass the grid's rules."""
        category = self.categories[themes[pretend]]
        on_grid = {word for group in grid for word in group}
        options: list[tuple[str, int]] = []
        others = [theme for index, theme in enumerate(themes) if index not in (host, pretend)]
        for word in candidates[host]:
            if word in on_grid or category not in self.lexicon.categories_of(word):
                continue
            if any(self.belongs_elsewhere(word, themes[host], other) for other in others):
                continue
            if any(is_variant_of_theme(word, theme) for theme in themes):
                continue
            for position, replaced in enumerate(grid[host]):
                if replaced in placed:
                    continue
                staying = on_grid - {replaced}
                if self.clashes_with_any(word, staying):
                    continue
                group = [*grid[host][:position], word, *grid[host][position + 1 :]]
                if self.history.repeats(themes[host], group) or any(
                    self.history.kept_apart(themes[host], word, other) for other in group
                ):
                    continue
                trial = [list(g) for g in grid]
                trial[host] = group
                if unique(trial, themes, self.is_member):
                    options.append((word, position))
            if len(options) >= _DECOY_OPTIONS:
                break
        return options

    def is_member(self, word: str, theme: str) -> bool:
        """The word is a member of the theme's category, by any sense (False for a
        theme served by neighbours)."""
        category = self.categories.get(theme)
        return category is not None and category in self.lexicon.categories_of(word)

    def _grid_similarity(
        self, themes: Sequence[str], groups: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(cosines between the grid's words, each word's group index), words in order."""
        units = self._unit_rows(themes, groups)
        labels = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
        return units @ units.T, labels

    def _unit_rows(self, themes: Sequence[str], groups: Sequence[Sequence[str]]) -> np.ndarray:
        """The float64 unit vectors of the groups' words, in order (words x D).

        The same matrix as `unit_rows` of their stacked vectors: each row is scaled by
        its own norm alone. The recent words' rows are kept (`_UNIT_ROWS_KEPT`), since
        the search, its wider second look and every decoy tried ask for the same
        puzzle's words again; at 3072 dimensions a row costs more to make than to copy.
        """
        kept = self._units
        for theme, group in zip(themes, groups, strict=True):
            missing = list(dict.fromkeys(word for word in group if (theme, word) not in kept))
            if missing:
                made = unit_rows(self.vectors(theme, missing).astype(np.float64), np.float64)
                for word, row in zip(missing, made, strict=True):
                    kept[(theme, word)] = row
        rows = []
        for theme, group in zip(themes, groups, strict=True):
            for word in group:
                kept.move_to_end((theme, word))
                rows.append(kept[(theme, word)])
        while len(kept) > _UNIT_ROWS_KEPT:
            kept.popitem(last=False)
        return np.stack(rows)

    def _grid_margin(self, themes: Sequence[str], groups: Sequence[Sequence[str]]) -> float:
        return swap_margin(*self._grid_similarity(themes, groups))

    def choose(
        self, themes: Sequence[str], pools: Sequence[Sequence[str]], chosen: Sequence[Sequence[str]]
    ) -> list[list[str]]:
        """The words of each group: `chosen` improved with words of `pools` (see
        `improve_groups`), searching each pool's `pool_size` first words, and twice as
        many where that leaves the grid near ambiguous (`_near_ambiguous`)."""
        # Kept by the words the search can read: a pool's first 2 x pool_size.
        searched = [pool[: 2 * self.pool_size] for pool in pools]
        key = _choice_key(themes, searched, chosen)
        if key not in self._choices:
            groups = self._choose(themes, searched, chosen, self.pool_size)
            if self._near_ambiguous(themes, groups):
                groups = self._choose(themes, searched, groups, 2 * self.pool_size)
            self._choices[key] = _frozen(groups)
        return [list(group) for group in self._choices[key]]

    def _near_ambiguous(self, themes: Sequence[str], groups: list[list[str]]) -> bool:
        """The swap margin is under twice the solver's ambiguity margin, on the grid's own
        scale: its gain, the intended total minus the mean total of all splits."""
        similarity, labels = self._grid_similarity(themes, groups)
        same = labels[:, None] == labels[None, :]
        pairs = np.triu(np.ones_like(similarity, dtype=bool), k=1)
        total = float(similarity[pairs & same].sum())
        mean_total = float(similarity[pairs].mean()) * int((pairs & same).sum())
        margin = swap_margin(similarity, labels)
        return margin < _NEAR_AMBIGUOUS * (total - mean_total)

    def _choose(
        self,
        themes: Sequence[str],
        pools: Sequence[Sequence[str]],
        chosen: Sequence[Sequence[str]],
        pool_size: int,
    ) -> list[list[str]]:
        sized = [list(pool[:pool_size]) for pool in pools]
        for pool, start in zip(sized, chosen, strict=True):
            pool.extend(word for word in start if word not in pool)
        words = [word for pool in sized for word in pool]
        units = self._unit_rows(themes, sized)
        similarity = units @ units.T
        offsets = np.cumsum([0] + [len(pool) for pool in sized])
        row_pools = [list(range(offsets[i], offsets[i + 1])) for i in range(len(sized))]
        start_rows = [
            [offsets[i] + sized[i].index(word) for word in group] for i, group in enumerate(chosen)
        ]
        clashes = self._clash_matrix(words)
        forbidden: list[set[frozenset[int]]] = []
        for theme, rows in zip(themes, row_pools, strict=True):
            if self.history.apart_pairs(theme):
                for a in rows:
                    for b in rows:
                        if a < b and self.history.kept_apart(theme, words[a], words[b]):
                            clashes[a, b] = clashes[b, a] = True
            row_of = {words[row]: row for row in rows}
            forbidden.append(
                {
                    frozenset(row_of[word] for word in group)
                    for group in self.history.taken_groups(theme)
                    if all(word in row_of for word in group)
                }
            )
        improved = improve_groups(similarity, row_pools, start_rows, clashes, forbidden)
        return [[words[row] for row in group] for group in improved]

    def _clash_matrix(self, words: Sequence[str]) -> np.ndarray:
        """`clash` of every two of `words`, False on the diagonal, since a row is only
        ever compared with the others.

        The search asks this of the pools of every puzzle it tries: all the pairs at
        once (`look_alike_matrix`, which counts a word as looking like itself), then
        the few words that have kin in the lexicon.
        """
        clashes = look_alike_matrix(words)
        rows_of: dict[str, list[int]] = {}
        for row, word in enumerate(words):
            rows_of.setdefault(word.lower(), []).append(row)
        for row, word in enumerate(words):
            for kin in self.lexicon.kin_of(word):
                clashes[row, rows_of.get(kin, [])] = True
        np.fill_diagonal(clashes, False)
        return clashes
