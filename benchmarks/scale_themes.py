"""A theme source for the scale run: the most frequent real nouns, as many as asked.

The shipped themes and the older pipeline's list hold a few hundred names, far
fewer than 2,000 or 10,000 puzzles need (a theme is used once per batch). So the
scale run writes its own: WordNet 3.0 nouns (index.noun) whose words are all in
the GloVe index, single words first, most frequent first (GloVe's rows are in
frequency order), then two-word compounds such as "ice cream" (ranked by their rarer
word) once the single words run out. Left out: names of lexicon categories, so that
every theme takes the neighbour search in GloVe (`candidates.not_a_category:
neighbours`) as the default run's non-category themes do, and a second form of a
theme already taken (years after year). About 33,000 single words pass, 71,000 in all.

Not for: good puzzles. The themes are real words, so the candidate search and the
assembly do their ordinary work on them; nobody would publish "Year" as a theme.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.io.vector_index import load_glove
from asyncpipe.puzzle.words import is_puzzle_word, variant_key

#: Debian/Ubuntu's wordnet-base (`make wordnet` installs it; the lexicon build reads it).
WORDNET = Path("/usr/share/wordnet")
#: Compounds of more words than this read like titles, not themes.
MAX_WORDS = 2


def wordnet_nouns(wordnet: Path = WORDNET) -> list[tuple[str, ...]]:
    """WordNet's noun lemmas as tuples of words ("ice_cream" -> ("ice", "cream"))."""
    index = wordnet / "index.noun"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: not found (install wordnet-base: make wordnet)")
    nouns = []
    with index.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(" "):  # the licence header
                continue
            nouns.append(tuple(line.split(" ", 1)[0].split("_")))
    return nouns


def noun_themes(count: int, exclude: Iterable[str] = (), wordnet: Path = WORDNET) -> list[str]:
    """The `count` most frequent noun themes, distinct, capitalised ("Ice cream").

    `exclude`: themes to leave out, whatever their case (`themes.exclude_categories`,
    which would otherwise drop "Research" from the draw). Raises ValueError when fewer
    than `count` pass.
    """
    glove = load_glove()
    lexicon = load_lexicon()
    excluded = {theme.casefold() for theme in exclude}
    ranked: list[tuple[int, int, str, str]] = []
    for words in wordnet_nouns(wordnet):
        if len(words) > MAX_WORDS or not all(is_puzzle_word(word) for word in words):
            continue
        rows = [glove.row_of(word) for word in words]
        if None in rows:
            continue
        theme = " ".join(words).capitalize()
        if theme.casefold() in excluded or lexicon.lookup(theme) is not None:
            continue
        key = " ".join(variant_key(word) for word in words)
        ranked.append((len(words), max(row for row in rows if row is not None), key, theme))
    ranked.sort()
    taken: set[str] = set()
    themes = []
    for *_, key, theme in ranked:
        if key not in taken:
            taken.add(key)
            themes.append(theme)
    if len(themes) < count:
        raise ValueError(f"{count} themes asked for, but only {len(themes)} nouns pass")
    return themes[:count]


def write_theme_source(
    path: Path, count: int, exclude: Iterable[str] = (), wordnet: Path = WORDNET
) -> list[str]:
    """`noun_themes(count, exclude)` written one per line to `path` (a `themes.source`)."""
    themes = noun_themes(count, exclude, wordnet)
    path.write_text("".join(f"{theme}\n" for theme in themes), encoding="utf-8")
    return themes
