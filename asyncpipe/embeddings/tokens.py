"""What a request is taken to cost in tokens, for `gemini.tokens_per_minute`, and how a batch
too large for that limit is cut.

The rule: **a text costs one token per 4 bytes of its UTF-8 form, rounded up, and at
least one; a request costs the sum over its texts.** Google's own rule of thumb for
Gemini models is about 4 characters a token. Counting bytes rather than characters
makes accented and non-Latin text dearer, as it is, and rounding up per text makes
the short words a puzzle is made of (one or two real tokens each) count a little
over: the estimate errs towards staying under the quota.

Not `count_tokens`: it is an HTTP request of its own, a round trip per batch, to
learn a figure that only paces requests. A wrong estimate costs little either way:
too high wastes some of the minute, too low meets a per-minute 429, which the gate
already waits out.

This module does no waiting: the limit is the request gate's (`limits.TokenLimiter`).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Bytes of UTF-8 per token in the estimate.
BYTES_PER_TOKEN = 4


def text_tokens(text: str) -> int:
    """The estimated tokens of one text: ceil(UTF-8 bytes / 4), at least 1."""
    return max(1, -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN))


def request_tokens(texts: Sequence[str]) -> int:
    """The estimated tokens of one request carrying `texts`."""
    return sum(text_tokens(text) for text in texts)


def within(texts: Sequence[str], largest: int) -> list[list[str]]:
    """`texts` cut, in order, into the fewest runs of consecutive texts whose estimate
    each stays within `largest` tokens; a text above `largest` alone is a run of its own
    (it can never go out, and its own request says so)."""
    runs: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        cost = text_tokens(text)
        if current and tokens + cost > largest:
            runs.append(current)
            current, tokens = [], 0
        current.append(text)
        tokens += cost
    if current:
        runs.append(current)
    return runs
