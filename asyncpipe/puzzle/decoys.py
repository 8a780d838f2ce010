"""Red herrings: a tile that belongs to two categories of its puzzle, placed so the
solution stays unique.

A Connections board is a puzzle because a tile seems to fit elsewhere: "teal" among
the Ducks beside Shades of blue, "mule" among Farm animals beside Shoes. A decoy is a
member of its own group's category (it is one of the theme's candidates) and also of
another category of the puzzle, its "pretended" one. The solution stays unique when the
pretended category already has its four tiles, none of which fits anywhere else: then
the decoy must go home. `assignments` counts the ways the tiles can be dealt to the
categories by membership alone, and a decoy is kept only when there is exactly one.

Pure standard library: the assembly (`asyncpipe.puzzle.assembly`) asks for decoys once a
puzzle's groups are chosen, and the scorer then measures the grid as it is, decoy and
all, so the solver's margin and the difficulty levels take the decoy into account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decoy:
    """A tile of `theme`'s group that is also a member of `pretends`, another theme of
    the same puzzle."""

    word: str
    theme: str
    pretends: str

    def to_json(self) -> dict[str, str]:
        return {"word": self.word, "category": self.theme, "pretends": self.pretends}


#: Whether a tile is a member of a theme's category: (word, theme) -> bool.
Membership = Callable[[str, str], bool]


def assignments(
    groups: Sequence[Sequence[str]], themes: Sequence[str], belongs: Membership, cap: int = 2
) -> int:
    """How many ways the grid's tiles can be dealt to the themes, each theme taking as
    many tiles as its group has and each tile going to a theme it belongs to (its own
    always counts); counting stops at `cap`, since only "exactly one" matters."""
    sizes = [len(group) for group in groups]
    tiles = [word for group in groups for word in group]
    fits = [
        [index for index, theme in enumerate(themes) if index == own or belongs(word, theme)]
        for own, group in enumerate(groups)
        for word in group
    ]
    # Tiles with the fewest choices first: the search fails early where it must.
    order = sorted(range(len(tiles)), key=lambda tile: (len(fits[tile]), tile))
    room = list(sizes)

    def count(position: int) -> int:
        if position == len(order):
            return 1
        found = 0
        for theme in fits[order[position]]:
            if room[theme]:
                room[theme] -= 1
                found += count(position + 1)
                room[theme] += 1
                if found >= cap:
                    break
        return found

    return min(count(0), cap)


def unique(groups: Sequence[Sequence[str]], themes: Sequence[str], belongs: Membership) -> bool:
    """The tiles can be dealt to the themes by membership in exactly one way."""
    return assignments(groups, themes, belongs) == 1
