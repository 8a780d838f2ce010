"""RetryPolicy: pure arithmetic on attempts, errors and a seeded random source; nothing sleeps."""

from __future__ import annotations

import itertools
import random

import pytest

from asyncpipe.embeddings.retry import MAX_DELAY, RetryPolicy
from asyncpipe.errors import RetryableEmbeddingError

UNAVAILABLE = RetryableEmbeddingError("503 unavailable", status=503)


def throttled(retry_after: float | None) -> RetryableEmbeddingError:
    return RetryableEmbeddingError("429 quota", status=429, retry_after=retry_after)


@pytest.mark.parametrize("attempt", range(1, 9))
def test_each_delay_lies_between_half_and_all_of_the_exponential_bound(attempt: int) -> None:
    policy = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=1000.0)
    bound = 0.5 * 2 ** (attempt - 1)
    rng = random.Random(attempt)

    delays = [policy.delay(attempt, UNAVAILABLE, rng) for _ in range(500)]

    assert all(0.5 * bound <= delay <= bound for delay in delays)
    # Jittered, not fixed: the draws cover the range, so parallel retries spread out.
    assert max(delays) - min(delays) > 0.4 * bound


def test_delays_double_from_one_attempt_to_the_next() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=1.0, max_delay=1000.0)
    rng = random.Random(7)

    means = [
        sum(policy.delay(attempt, UNAVAILABLE, rng) for _ in range(2000)) / 2000
        for attempt in range(1, 7)
    ]

    for earlier, later in itertools.pairwise(means):
        assert later / earlier == pytest.approx(2.0, rel=0.05)
    assert means[0] == pytest.approx(0.75, rel=0.05)


def test_delays_are_capped_at_max_delay_whatever_the_attempt() -> None:
    policy = RetryPolicy(max_retries=100, base_delay=1.0, max_delay=8.0)
    rng = random.Random(3)

    late = [policy.delay(attempt, UNAVAILABLE, rng) for attempt in range(4, 60) for _ in range(20)]

    assert max(late) <= 8.0
    assert min(late) >= 4.0


def test_the_default_cap_is_a_minute() -> None:
    policy = RetryPolicy(max_retries=100, base_delay=1.0)

    assert policy.max_delay == MAX_DELAY == 60.0
    assert policy.delay(1000, UNAVAILABLE, random.Random(0)) <= 60.0


def test_a_server_retry_after_is_a_floor_on_the_delay() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=0.1, max_delay=60.0)
    rng = random.Random(11)

    delays = [policy.delay(attempt, throttled(7.5), rng) for attempt in (1, 2, 3)]

    assert delays == [7.5, 7.5, 7.5]


def test_backoff_longer_than_retry_after_wins() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=10.0, max_delay=60.0)
    rng = random.Random(5)

    delays = [policy.delay(2, throttled(0.5), rng) for _ in range(100)]

    assert min(delays) >= 10.0  # half of the attempt-2 bound of 20 s
    assert max(delays) <= 20.0


def test_a_retry_after_beyond_max_delay_is_cut_to_max_delay() -> None:
    # The gate's shared pause holds the remainder of the server's delay.
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=30.0)

    assert policy.delay(1, throttled(300.0), random.Random(0)) == 30.0


def test_a_429_without_retry_after_backs_off_like_any_retryable_error() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=2.0, max_delay=60.0)

    with_status = policy.delay(3, throttled(None), random.Random(9))
    plain = policy.delay(3, UNAVAILABLE, random.Random(9))

    assert with_status == plain
    assert 4.0 <= plain <= 8.0


def test_a_zero_base_delay_retries_at_once_unless_the_server_asks_to_wait() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=0.0)
    rng = random.Random(1)

    assert policy.delay(1, UNAVAILABLE, rng) == 0.0
    assert policy.delay(3, UNAVAILABLE, rng) == 0.0
    assert policy.delay(1, throttled(2.0), rng) == 2.0


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_should_retry_allows_exactly_max_retries_retries(max_retries: int) -> None:
    policy = RetryPolicy(max_retries=max_retries, base_delay=1.0)

    allowed = [attempt for attempt in range(1, 10) if policy.should_retry(attempt)]

    assert allowed == list(range(1, max_retries + 1))


def test_the_same_seed_gives_the_same_delays_and_another_seed_others() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=1.0)

    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [
            policy.delay(attempt, UNAVAILABLE, rng) for attempt in range(1, 6) for _ in range(3)
        ]

    assert delays(42) == delays(42)
    assert delays(42) != delays(43)


def test_the_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=1.0)

    with pytest.raises(AttributeError):
        policy.max_retries = 5  # type: ignore[misc]
    assert policy == RetryPolicy(max_retries=3, base_delay=1.0, max_delay=MAX_DELAY)
