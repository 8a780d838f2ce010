"""When to try an embedding request again, and how long to wait first.

Exponential backoff with jitter (a uniform draw between half and all of the
exponential bound, so retries of many requests spread out), except that a
delay the server asked for (RetryInfo or Retry-After, carried on
`RetryableEmbeddingError.retry_after`) is honoured as a floor. Only retryable
errors are retried; fatal ones (400, 401, 403, 404) go straight up. Pure
policy: the engine does the waiting, so tests can check the delays without
sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from asyncpipe.errors import RetryableEmbeddingError

#: No single wait longer than this, whatever the attempt number.
MAX_DELAY = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_delay: float
    max_delay: float = MAX_DELAY

    def delay(self, attempt: int, error: RetryableEmbeddingError, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        bound = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = rng.uniform(0.5 * bound, bound) if bound > 0 else 0.0
        if error.retry_after is not None:
            return min(self.max_delay, max(error.retry_after, jittered))
        return jittered

    def should_retry(self, attempt: int) -> bool:
        """Whether retry number `attempt` is allowed."""
        return attempt <= self.max_retries
