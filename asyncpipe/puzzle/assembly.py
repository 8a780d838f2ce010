"""Assemble puzzles from ranked themes: groups of distinct words, themes in draw order.

Pure and deterministic: the same ranked themes in the same order give the same
puzzles, however the embeddings arrived. A puzzle takes the next themes in
order; each group takes its theme's best words that no other group of the
puzzle holds (nor a case or inflection variant of one), and that are not a
form of another theme's name in the puzzle. A theme that cannot fill its
group beside the others is held over to the next puzzle; a theme that cannot
fill a group at all is reported as failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asyncpipe.puzzle.decoys import Decoy
from asyncpipe.puzzle.ranking import RankedTheme
from asyncpipe.puzzle.selection import CloserElsewhere, PuzzleSelection
from asyncpipe.puzzle.words import is_variant_of_theme, variant_key


@dataclass(frozen=True)
class Group:
    theme: str
    words: tuple[str, ...]
    scores: tuple[float, ...]


@dataclass(frozen=True)
class Puzzle:
    groups: tuple[Group, ...]
    #: Red herrings: tiles of one group that are members of another group's category too.
    decoys: tuple[Decoy, ...] = ()

    @property
    def themes(self) -> list[str]:
        return [group.theme for group in self.groups]

    @property
    def words(self) -> list[str]:
        return [word for group in self.groups for word in group.words]

    @property
    def scores(self) -> list[float]:
        return [score for group in self.groups for score in group.scores]


@dataclass(frozen=True)
class AssemblyResult:
    puzzles: tuple[Puzzle, ...]
    failed_themes: dict[str, str]
    failed_puzzles: dict[str, str]
    unused_themes: tuple[str, ...] = field(default=())


#: Pending themes looked through for one that shares a member with the puzzle's
#: (a decoy needs such a pair); far enough that most puzzles find one, near enough
#: that the draw order still decides.
_BRIDGE_LOOKAHEAD = 80


def assemble_puzzles(
    ranked: Iterable[RankedTheme],
    puzzle_count: int,
    themes_per_puzzle: int,
    words_per_theme: int,
    closer_elsewhere: CloserElsewhere | None = None,
    selection: PuzzleSelection | None = None,
) -> AssemblyResult:
    """Puzzles from ranked themes, in order.

    With `selection` (themes served by lexicon categories), a theme joins a puzzle only
    if its category does not overlap another theme's there, and only if every group
    can still be filled with words that belong to no other theme of the puzzle; then
    the selection's search picks each group's words for the clearest solution.

    Without it, with `closer_elsewhere`, once a puzzle's themes are chosen each group
    trades a word that sits closer to another theme of the puzzle than to its own for
    its theme's next candidate, where the candidates allow it (else the group stays as
    it was).
    """
    failed_themes: dict[str, str] = {}
    pending: deque[RankedTheme] = deque()
    by_name: dict[str, RankedTheme] = {}
    for theme in ranked:
        by_name[theme.theme] = theme
        if len(theme.words) < words_per_theme:
            failed_themes[theme.theme] = (
                f"only {len(theme.words)} distinct candidate words, a group needs {words_per_theme}"
            )
        else:
            pending.append(theme)

    puzzles: list[Puzzle] = []
    failed_puzzles: dict[str, str] = {}
    while len(puzzles) < puzzle_count:
        decoys: list[Decoy] = []
        if selection is not None:
            groups, held_over, decoys = _fill_selected(
                pending, themes_per_puzzle, words_per_theme, selection
            )
        else:
            groups, held_over = _fill_puzzle(pending, themes_per_puzzle, words_per_theme)
        if len(groups) < themes_per_puzzle:
            left = len(groups) + len(held_over)
            first_missing = len(puzzles) + 1
            failed_puzzles[f"puzzle_{first_missing}"] = (
                f"ran out of themes: the {left} usable themes left fill only "
                f"{len(groups)} of {themes_per_puzzle} groups"
            )
            for number in range(first_missing + 1, puzzle_count + 1):
                failed_puzzles[f"puzzle_{number}"] = "ran out of themes: none left"
            unused = [group.theme for group in groups] + [theme.theme for theme in held_over]
            unused += [theme.theme for theme in pending]
            return AssemblyResult(tuple(puzzles), failed_themes, failed_puzzles, tuple(unused))
        if closer_elsewhere is not None and selection is None:
            groups = _keep_words_home(groups, by_name, closer_elsewhere, words_per_theme)
        puzzles.append(Puzzle(tuple(groups), tuple(decoys)))
        pending.extendleft(reversed(held_over))
    return AssemblyResult(
        tuple(puzzles), failed_themes, failed_puzzles, tuple(theme.theme for theme in pending)
    )


def _fill_puzzle(
    pending: deque[RankedTheme], themes_per_puzzle: int, words_per_theme: int
) -> tuple[list[Group], list[RankedTheme]]:
    """Take themes from the front of `pending` until the puzzle is full or none is left."""
    groups: list[Group] = []
    held_over: list[RankedTheme] = []
    used_keys: set[str] = set()
    while len(groups) < themes_per_puzzle and pending:
        theme = pending.popleft()
        group = _group_for(theme, groups, used_keys, words_per_theme)
        if group is None:
            held_over.append(theme)
            continue
        groups.append(group)
        used_keys.update(variant_key(word) for word in group.words)
    return groups, held_over


def _fill_selected(
    pending: deque[RankedTheme],
    themes_per_puzzle: int,
    words_per_theme: int,
    selection: PuzzleSelection,
) -> tuple[list[Group], list[RankedTheme], list[Decoy]]:
    """Take themes from the front of `pending` that fit beside those taken, then choose
    the words (`PuzzleSelection.choose`) and the decoys (`PuzzleSelection.place_decoys`).

    When decoys are wanted and no two themes taken share a member yet, the next theme
    taken is the first of the next `_BRIDGE_LOOKAHEAD` pending ones that shares a
    member with one taken, if any: a decoy needs such a pair on the grid.
    """
    themes: list[RankedTheme] = []
    held_over: list[RankedTheme] = []
    pools: list[list[str]] = []
    start: list[list[str]] = []
    while len(themes) < themes_per_puzzle and pending:
        theme = _next_theme(pending, themes, selection)
        if any(selection.conflict(theme.theme, taken.theme) for taken in themes):
            held_over.append(theme)
            continue
        trial = _fair_pools([*themes, theme], selection)
        names = [taken.theme for taken in themes] + [theme.theme]
        first = _first_words(trial, words_per_theme, selection, names)
        if first is None:
            held_over.append(theme)
            continue
        themes.append(theme)
        pools, start = trial, first
    if len(themes) < themes_per_puzzle:
        # Not a puzzle: the caller hands every theme back.
        return [Group(theme.theme, (), ()) for theme in themes], held_over, []
    names = [theme.theme for theme in themes]
    chosen = selection.choose(names, pools, start)
    decoys: list[Decoy] = []
    if selection.decoys:
        chosen, decoys = selection.place_decoys(names, [t.words for t in themes], chosen)
    groups: list[Group] = []
    for theme, words in zip(themes, chosen, strict=True):
        score_of = dict(zip(theme.words, theme.scores, strict=True))
        # Each group lists its words closest to the theme first, as groups always have.
        ordered = sorted(words, key=lambda word: -score_of[word])
        groups.append(Group(theme.theme, tuple(ordered), tuple(score_of[w] for w in ordered)))
    return groups, held_over, decoys


def _next_theme(
    pending: deque[RankedTheme], taken: list[RankedTheme], selection: PuzzleSelection
) -> RankedTheme:
    """The next pending theme, or with decoys wanted and no bridged pair taken yet, the
    first of the next few that shares a member with a theme taken."""
    if selection.decoys and taken and not _bridged(taken, selection):
        for position in range(min(_BRIDGE_LOOKAHEAD, len(pending))):
            candidate = pending[position]
            if any(_can_bridge(candidate, theme, selection) for theme in taken) and not any(
                selection.conflict(candidate.theme, theme.theme) for theme in taken
            ):
                del pending[position]
                return candidate
    return pending.popleft()


def _bridged(themes: list[RankedTheme], selection: PuzzleSelection) -> bool:
    return any(
        _can_bridge(a, b, selection) for index, a in enumerate(themes) for b in themes[index + 1 :]
    )


def _can_bridge(a: RankedTheme, b: RankedTheme, selection: PuzzleSelection) -> bool:
    """A candidate of one theme is a member of the other's category: a decoy could be
    placed between them (`PuzzleSelection.place_decoys` checks the rest)."""
    return selection.shares_a_candidate(a.theme, a.words, b.theme, b.words)


def _fair_pools(themes: list[RankedTheme], selection: PuzzleSelection) -> list[list[str]]:
    """Each theme's ranked words that may sit on a grid beside the other themes: none
    names another theme, and none belongs to another theme."""
    pools: list[list[str]] = []
    for theme in themes:
        kept_off = set().union(
            *(
                selection.kept_off(theme.theme, theme.words, other.theme)
                for other in themes
                if other is not theme
            )
        )
        pools.append([word for word in theme.words if word not in kept_off])
    return pools


def _first_words(
    pools: list[list[str]],
    words_per_theme: int,
    selection: PuzzleSelection,
    themes: Sequence[str],
) -> list[list[str]] | None:
    """The first words of each pool, never two that clash on the grid (forms of one
    word, look-alikes), nor a group the history forbids (`PuzzleSelection.history`:
    two tiles of one recent group of the category, or a group published before);
    None when a group cannot be filled."""
    history = selection.history
    taken: list[str] = []
    groups: list[list[str]] = []
    for pool, theme in zip(pools, themes, strict=True):
        group: list[str] = []
        for word in pool:
            if selection.clashes_with_any(word, taken):
                continue
            if history and (
                any(history.kept_apart(theme, word, other) for other in group)
                or (len(group) == words_per_theme - 1 and history.repeats(theme, [*group, word]))
            ):
                continue
            group.append(word)
            taken.append(word)
            if len(group) == words_per_theme:
                break
        if len(group) < words_per_theme:
            return None
        groups.append(group)
    return groups


def _keep_words_home(
    groups: list[Group],
    by_name: dict[str, RankedTheme],
    closer_elsewhere: CloserElsewhere,
    words_per_theme: int,
) -> list[Group]:
    """Re-pick each group's words, leaving out those that belong with another theme."""
    groups = list(groups)
    themes = [group.theme for group in groups]
    for position, group in enumerate(groups):
        others = [other for other in themes if other != group.theme]
        if not any(closer_elsewhere(w, group.theme, o) for w in group.words for o in others):
            continue
        taken = {
            variant_key(word)
            for index, other_group in enumerate(groups)
            if index != position
            for word in other_group.words
        }
        words: list[str] = []
        scores: list[float] = []
        ranked = by_name[group.theme]
        for word, score in zip(ranked.words, ranked.scores, strict=True):
            if variant_key(word) in taken or any(is_variant_of_theme(word, o) for o in others):
                continue
            if any(closer_elsewhere(word, group.theme, other) for other in others):
                continue
            words.append(word)
            scores.append(score)
            if len(words) == words_per_theme:
                groups[position] = Group(group.theme, tuple(words), tuple(scores))
                break
    return groups


def _group_for(
    theme: RankedTheme, groups: list[Group], used_keys: set[str], words_per_theme: int
) -> Group | None:
    other_themes = [group.theme for group in groups]
    if any(is_variant_of_theme(word, theme.theme) for group in groups for word in group.words):
        return None  # a word already on the grid names this theme
    words: list[str] = []
    scores: list[float] = []
    for word, score in zip(theme.words, theme.scores, strict=True):
        if variant_key(word) in used_keys:
            continue
        if any(is_variant_of_theme(word, other) for other in other_themes):
            continue
        words.append(word)
        scores.append(score)
        if len(words) == words_per_theme:
            return Group(theme.theme, tuple(words), tuple(scores))
    return None
