"""asyncpipe.puzzle.history: recent categories, and the groups a new batch may not make."""

from __future__ import annotations

from asyncpipe.puzzle.history import History, PublishedBatch, PublishedGroup


def _history(*batches: dict[str, tuple[str, ...]]) -> History:
    return History(
        tuple(
            PublishedBatch(
                f"batch-{number}",
                tuple(PublishedGroup(theme, tiles) for theme, tiles in groups.items()),
            )
            for number, groups in enumerate(batches)
        )
    )


TREES = ("oak", "elm", "ash", "pine")


def test_batches_since_counts_from_the_newest_batch_ignoring_case() -> None:
    history = _history({"Trees": TREES}, {"Gems": ("ruby", "opal", "jade", "onyx")}, {})
    assert history.batches_since("trees") == 3
    assert history.batches_since("Gems") == 2
    assert history.batches_since("Dances") is None
    assert history.is_recent("Trees", 3) and not history.is_recent("Trees", 2)


def test_recency_order_puts_categories_not_used_recently_first_then_the_least_recently_used() -> (
    None
):
    history = _history({"A": TREES, "B": TREES}, {"C": TREES}, {"D": TREES}, {"E": TREES})
    themes = ["E", "D", "New", "C", "B", "Old", "A"]
    # Window 3: A and B (4 batches ago) are not recent; they keep their place among the new.
    assert history.recency_order(themes, 3) == ["New", "B", "Old", "A", "C", "D", "E"]
    # Window 7: every used category is recent; the oldest use comes back first.
    assert history.recency_order(themes, 7) == ["New", "Old", "B", "A", "C", "D", "E"]
    assert history.recency_order(themes, 0) == themes


def test_memory_forbids_every_earlier_group_and_keeps_apart_tiles_of_recent_ones() -> None:
    history = _history(
        {"Trees": TREES},
        {"Trees": ("birch", "beech", "yew", "fir")},
        {"Gems": ("ruby", "opal", "jade", "onyx")},
    )
    memory = history.memory(["trees"], window=2)
    # Any group of the whole history is never made again...
    assert memory.repeats("Trees", ("pine", "ash", "elm", "oak"))
    assert memory.repeats("Trees", ("fir", "yew", "beech", "birch"))
    assert not memory.repeats("Trees", ("oak", "elm", "ash", "birch"))
    # ...and two tiles of a recent one (batch 2 of 3) never share a new group...
    assert memory.kept_apart("Trees", "yew", "birch")
    assert not memory.kept_apart("Trees", "yew", "oak")
    # ...but those of a group older than the window may.
    assert not memory.kept_apart("Trees", "oak", "elm")
    # Only the categories asked about are remembered.
    assert not memory.repeats("Gems", ("ruby", "opal", "jade", "onyx"))
