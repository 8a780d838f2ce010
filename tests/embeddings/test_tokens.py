"""asyncpipe.embeddings.tokens: the stated token estimate, and cutting a batch to fit a limit."""

from __future__ import annotations

import pytest

from asyncpipe.embeddings.tokens import request_tokens, text_tokens, within


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("oak", 1),  # 3 bytes
        ("pear", 1),  # 4 bytes: exactly one token
        ("apple", 2),  # 5 bytes: rounded up
        ("Musical instruments", 5),  # 19 bytes
        ("café", 2),  # 5 bytes: é is two
        ("東京", 2),  # 6 bytes: three each
        ("", 1),  # never free
    ],
)
def test_a_text_costs_one_token_per_four_utf8_bytes_rounded_up_and_at_least_one(
    text: str, tokens: int
) -> None:
    assert text_tokens(text) == tokens


def test_a_request_costs_the_sum_of_its_texts() -> None:
    assert request_tokens(["oak", "apple", "Musical instruments"]) == 1 + 2 + 5
    assert request_tokens([]) == 0


def test_within_cuts_in_order_into_the_fewest_runs_that_fit() -> None:
    texts = ["apple", "pear", "oak", "Musical instruments", "elm"]  # 2, 1, 1, 5, 1 tokens

    runs = within(texts, 5)

    assert runs == [["apple", "pear", "oak"], ["Musical instruments"], ["elm"]]
    assert [text for run in runs for text in run] == texts
    assert all(request_tokens(run) <= 5 for run in runs)


def test_within_leaves_a_batch_that_fits_whole() -> None:
    assert within(["oak", "elm"], 2) == [["oak", "elm"]]


def test_a_text_above_the_limit_alone_is_a_run_of_its_own() -> None:
    assert within(["oak", "Musical instruments", "elm"], 3) == [
        ["oak"],
        ["Musical instruments"],
        ["elm"],
    ]
