"""Red herrings: counting the ways to deal a grid's tiles, and placing decoys."""

from __future__ import annotations

from asyncpipe.puzzle.decoys import Decoy, assignments, unique
from asyncpipe.puzzle.lexicon import Category
from asyncpipe.puzzle.selection import PuzzleSelection
from tests.puzzle.planted import planted_selection

MEMBERS = {
    "Ducks": {"mallard", "teal", "eider", "pintail", "wigeon"},
    "Shades of blue": {"navy", "azure", "cobalt", "cyan", "teal"},
    "Trees": {"oak", "elm", "ash", "birch", "palm"},
    "Hand": {"palm", "thumb", "knuckle", "wrist", "finger"},
}


def belongs(word: str, theme: str) -> bool:
    return word in MEMBERS[theme]


THEMES = ["Ducks", "Shades of blue", "Trees", "Hand"]


def test_a_grid_without_shared_tiles_deals_one_way() -> None:
    groups = [
        ["mallard", "eider", "pintail", "wigeon"],
        ["navy", "azure", "cobalt", "cyan"],
        ["oak", "elm", "ash", "birch"],
        ["thumb", "knuckle", "wrist", "finger"],
    ]
    assert assignments(groups, THEMES, belongs) == 1


def test_a_decoy_whose_other_category_is_full_keeps_the_solution_unique() -> None:
    groups = [
        ["mallard", "eider", "pintail", "teal"],  # teal: a duck, and a shade of blue
        ["navy", "azure", "cobalt", "cyan"],
        ["oak", "elm", "ash", "palm"],  # palm: a tree, and part of the hand
        ["thumb", "knuckle", "wrist", "finger"],
    ]
    assert unique(groups, THEMES, belongs)


def test_two_tiles_that_could_trade_places_make_two_solutions() -> None:
    # teal among the ducks and ... a blue that is also a duck: they could swap.
    members = {**MEMBERS, "Ducks": MEMBERS["Ducks"] | {"navy"}}
    groups = [
        ["mallard", "eider", "pintail", "teal"],
        ["navy", "azure", "cobalt", "cyan"],
        ["oak", "elm", "ash", "birch"],
        ["thumb", "knuckle", "wrist", "finger"],
    ]
    assert assignments(groups, THEMES, lambda word, theme: word in members[theme]) == 2
    assert not unique(groups, THEMES, lambda word, theme: word in members[theme])


def test_a_tile_fitting_no_theme_but_its_own_still_deals() -> None:
    groups = [["a", "b"], ["c", "d"]]
    assert assignments(groups, ["X", "Y"], lambda word, theme: False) == 1


def _selection(decoys: int) -> PuzzleSelection:
    return planted_selection(
        [
            Category("Ducks", ("mallard", "eider", "pintail", "wigeon", "teal", "gadwall")),
            Category("Shades of blue", ("navy", "azure", "cobalt", "cyan", "teal", "cerulean")),
            Category("Trees", ("oak", "elm", "ash", "birch", "beech", "maple")),
            Category("Gems", ("ruby", "opal", "jade", "pearl", "topaz", "garnet")),
        ],
        seed=3,
        noise=0.2,
        decoys=decoys,
    )


START = [
    ["mallard", "eider", "pintail", "wigeon"],
    ["navy", "azure", "cobalt", "cyan"],
    ["oak", "elm", "ash", "birch"],
    ["ruby", "opal", "jade", "pearl"],
]
NAMES = ["Ducks", "Shades of blue", "Trees", "Gems"]


def test_a_decoy_is_a_member_of_its_group_and_of_the_category_it_pretends_to() -> None:
    selection = _selection(decoys=1)
    candidates = [list(selection.lexicon.members(name)) for name in NAMES]
    groups, decoys = selection.place_decoys(NAMES, candidates, START)
    assert len(decoys) == 1
    (decoy,) = decoys
    assert decoy.word == "teal"
    assert {decoy.theme, decoy.pretends} == {"Ducks", "Shades of blue"}
    host = NAMES.index(decoy.theme)
    assert "teal" in groups[host]
    assert sum(word == "teal" for group in groups for word in group) == 1
    member = selection.is_member
    assert unique(groups, NAMES, member)
    # Three groups untouched, one word of the host traded for the decoy.
    changed = [index for index in range(4) if groups[index] != START[index]]
    assert changed == [host]
    assert isinstance(decoy, Decoy) and decoy.to_json()["pretends"] == decoy.pretends


def test_no_decoy_is_placed_when_none_are_wanted_or_no_themes_share_a_member() -> None:
    none_wanted = _selection(decoys=0)
    candidates = [list(none_wanted.lexicon.members(name)) for name in NAMES]
    assert none_wanted.place_decoys(NAMES, candidates, START) == (START, [])
    wanted = _selection(decoys=2)
    no_bridge = ["Trees", "Gems"]
    groups, decoys = wanted.place_decoys(
        no_bridge, [list(wanted.lexicon.members(n)) for n in no_bridge], START[2:]
    )
    assert decoys == [] and groups == START[2:]
