"""The benchmark's instruments that work without a long run: the process-tree memory
sampler on a real tree of processes, and the scale run's generated theme source."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asyncpipe.io.lexicon_file import load_lexicon
from asyncpipe.io.theme_source import read_theme_source
from asyncpipe.io.vector_index import load_glove
from asyncpipe.puzzle.words import variant_key
from asyncpipe.settings.sections import PuzzleGeneration, Themes
from asyncpipe.stages.themes import select_themes
from benchmarks.process_tree import TreeMemorySampler, descendants, rss_kb
from benchmarks.scale_themes import WORDNET, noun_themes, wordnet_nouns, write_theme_source

MB = 1024

# A parent holding 20 MB that starts a child holding 50 MB, both written to (a
# zero-filled bytearray may stay unbacked), and both alive together for a while.
TREE = textwrap.dedent(
    """
    import subprocess, sys
    held = bytearray(b"\\x01") * (20 << 20)
    child = subprocess.Popen([sys.executable, "-c",
        "import sys, time; held = bytearray(b'\\\\x01') * (50 << 20); "
        "print('ready', flush=True); time.sleep(0.6)"], stdout=subprocess.PIPE)
    child.stdout.readline()
    child.wait()
    """
)


def test_tree_peak_counts_a_child_the_single_process_peak_misses() -> None:
    process = subprocess.Popen([sys.executable, "-c", TREE])
    with TreeMemorySampler(process.pid) as sampler:
        _, status, _ = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The largest single process of the tree (the child, ~60 MB): what ru_maxrss
    # reports. Not ru_maxrss itself, which also counts the pages a forked child
    # held before its exec (a large test process makes it hundreds of MB).
    assert sampler.peak_single_kb >= 50 * MB
    assert sampler.peak_processes == 2
    assert sampler.peak_tree_kb > sampler.peak_single_kb + 15 * MB
    assert sampler.peak_tree_kb >= sampler.peak_main_kb + 50 * MB
    assert 20 * MB <= sampler.peak_main_kb < 50 * MB
    assert sampler.samples >= 10


def test_sampler_stops_by_itself_when_the_root_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = TreeMemorySampler(process.pid)
    sampler.start()
    process.wait()
    sampler.stop()
    assert rss_kb(process.pid) is None
    assert descendants(os.getpid())[0] == os.getpid()


def test_sampler_refuses_an_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        TreeMemorySampler(os.getpid(), interval=0)


needs_wordnet = pytest.mark.skipif(
    not (WORDNET / "index.noun").is_file(), reason="needs wordnet-base (make wordnet)"
)


@needs_wordnet
def test_generated_themes_are_distinct_frequent_real_nouns_outside_the_lexicon() -> None:
    themes = noun_themes(12_500, exclude=Themes().exclude_categories)
    assert len(themes) == 12_500
    assert len({variant_key(theme.lower()) for theme in themes}) == len(themes)
    nouns = {" ".join(words) for words in wordnet_nouns()}
    glove = load_glove()
    lexicon = load_lexicon()
    for theme in themes:
        assert theme == theme.capitalize()
        assert theme.lower() in nouns, theme
        assert all(glove.row_of(word) is not None for word in theme.lower().split()), theme
        assert lexicon.lookup(theme) is None, theme
    assert "Research" not in themes
    # Single, frequent words first: enough for 2,000 puzzles and their spares.
    assert themes[:3] == ["Two", "First", "Year"]
    assert all(" " not in theme for theme in themes)


@needs_wordnet
def test_generated_source_gives_10000_puzzles_their_themes_and_spares(tmp_path: Path) -> None:
    source = tmp_path / "themes.txt"
    settings = Themes()
    write_theme_source(source, 50_000, exclude=settings.exclude_categories)
    available, name = read_theme_source(source)
    generation = PuzzleGeneration(total_puzzle_count=10_000)
    selection = select_themes(available, name, settings, generation)
    assert len(selection.themes) == 40_000
    assert len(selection.spare_themes) == 10_000
