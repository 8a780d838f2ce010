"""The published batches, as a pure value: which categories are recent, which groups are taken.

A daily batch must not show players what they have already seen. Two rules use
the history (`asyncpipe.io.history_file` reads and appends it):

- The draw prefers categories not used in the last `themes.avoid_recent_batches`
  batches; when there are not enough of those, the least recently used come back
  first (`History.recency_order`).
- A group never repeats one found anywhere in the history (the same category with
  the same tiles), and a category that was used in the recent batches comes back
  with mostly new tiles: at most one tile shared with each of its groups there
  (`GroupMemory`). That second rule looks only as far back as the first: a category
  of 13 members has at most 13 groups that pairwise share no more than one tile,
  so a rule over the whole history would retire most categories within a few weeks
  of daily batches, where the window keeps them serving for months.

A category is named by its theme, compared ignoring case. No I/O, deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType


def category_key(theme: str) -> str:
    """How the history names a category: its theme, ignoring case."""
    return theme.casefold()


@dataclass(frozen=True, slots=True)
class PublishedGroup:
    category: str
    tiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishedBatch:
    """One complete batch: its id (the digest of its final_puzzles.json), set name, groups."""

    batch: str
    groups: tuple[PublishedGroup, ...]
    set_name: str | None = None
    random_seed: int | None = None


@dataclass(frozen=True, slots=True)
class History:
    """The published batches, oldest first, and the digest of the file they came from."""

    batches: tuple[PublishedBatch, ...] = ()
    #: sha256 of the history file's bytes ("" when there is none): a resumed run must
    #: see the history its interrupted run saw (`asyncpipe.run.checkpoint`).
    digest: str = ""
    _last_used: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        last: dict[str, int] = {}
        for position, batch in enumerate(self.batches):
            for group in batch.groups:
                last[category_key(group.category)] = position
        object.__setattr__(self, "_last_used", MappingProxyType(last))

    def batches_since(self, theme: str) -> int | None:
        """How many batches ago the category was last used (1: the newest), or None."""
        position = self._last_used.get(category_key(theme))
        return None if position is None else len(self.batches) - position

    def is_recent(self, theme: str, window: int) -> bool:
        """Used in the last `window` batches."""
        since = self.batches_since(theme)
        return since is not None and since <= window

    def recency_order(self, themes: Sequence[str], window: int) -> list[str]:
        """`themes` with those not used in the last `window` batches first, in their given
        order, then the recent ones, least recently used first (ties in the given order)."""

        def rank(item: tuple[int, str]) -> tuple[int, int, int]:
            position, theme = item
            if not self.is_recent(theme, window):
                return (0, 0, position)
            since = self.batches_since(theme)
            assert since is not None
            return (1, -since, position)

        return [theme for _, theme in sorted(enumerate(themes), key=rank)]

    def memory(self, themes: Iterable[str], window: int) -> GroupMemory:
        """What the assembly must know of the earlier groups of these themes' categories."""
        wanted = {category_key(theme) for theme in themes}
        taken: dict[str, set[frozenset[str]]] = {}
        apart: dict[str, set[tuple[str, str]]] = {}
        first_recent = len(self.batches) - window
        for position, batch in enumerate(self.batches):
            for group in batch.groups:
                key = category_key(group.category)
                if key not in wanted:
                    continue
                taken.setdefault(key, set()).add(frozenset(group.tiles))
                if position >= first_recent:
                    pairs = apart.setdefault(key, set())
                    tiles = sorted(set(group.tiles))
                    pairs.update((a, b) for i, a in enumerate(tiles) for b in tiles[i + 1 :])
        return GroupMemory(
            {key: frozenset(groups) for key, groups in taken.items()},
            {key: frozenset(pairs) for key, pairs in apart.items()},
        )


@dataclass(frozen=True, slots=True)
class GroupMemory:
    """The groups a batch may not make, per category (see the module docstring).

    The tile rule is a rule about pairs: a group shares at most one tile with an
    earlier group exactly when no two of its tiles were in that group together. So
    the word search treats such a pair like two words that clash
    (`asyncpipe.puzzle.selection`), and only the exact repeat needs a set check.
    """

    #: Category key -> every earlier group of it (its tiles).
    taken: Mapping[str, frozenset[frozenset[str]]] = field(default_factory=dict)
    #: Category key -> pairs of tiles (sorted) that shared one of its recent groups.
    apart: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)

    def kept_apart(self, theme: str, a: str, b: str) -> bool:
        """Two tiles that may not both be in a new group of this theme."""
        pairs = self.apart.get(category_key(theme))
        return pairs is not None and ((a, b) if a <= b else (b, a)) in pairs

    def repeats(self, theme: str, tiles: Iterable[str]) -> bool:
        """These tiles are an earlier group of this theme's category."""
        groups = self.taken.get(category_key(theme))
        return groups is not None and frozenset(tiles) in groups

    def taken_groups(self, theme: str) -> frozenset[frozenset[str]]:
        return self.taken.get(category_key(theme), frozenset())

    def apart_pairs(self, theme: str) -> frozenset[tuple[str, str]]:
        """Every pair `kept_apart` holds for this theme (empty for most)."""
        return self.apart.get(category_key(theme), frozenset())

    def __bool__(self) -> bool:
        return bool(self.taken)


#: No history: nothing is kept apart, nothing repeats.
NO_MEMORY = GroupMemory()
