"""The exceptions asyncpipe raises, in one tree, so callers catch at the right level.

    AsyncpipeError                 anything asyncpipe raises on purpose
    ├── ConfigError                params.yaml or command-line settings are wrong
    ├── InputError                 an input file is missing, empty or malformed
    ├── OutputError                an output cannot be written (permissions, full disk)
    ├── BusyError                  another run is working in the same workdir
    └── EmbeddingError             an embedding could not be obtained
        ├── RetryableEmbeddingError   worth trying again later (throttling, 5xx, timeouts,
        │                             malformed answers); after the retries, the themes
        │                             that needed it fail and are replaced
        ├── UnembeddableTextError     this text cannot be embedded (the offline index knows
        │                             none of its words); its theme fails and is replaced
        ├── FatalEmbeddingError       retrying cannot help and nothing else will work
        │                             either (bad key, bad request): the run stops
        └── EmbeddingStopped          the run is winding down after a signal: the text
            │                         will not be requested, its theme is left unfinished
            └── DailyQuotaSpent       the day's requests are spent (`gemini.requests_per_day`,
                                      or the API's per-day quota): the run winds down the
                                      same way, and `run --resume` continues it the next day

Exit codes are chosen in one place, at the command-line edge (`asyncpipe.cli`),
never here and never deep inside the pipeline.
"""

from __future__ import annotations


class AsyncpipeError(Exception):
    """Base of every error asyncpipe raises deliberately.

    The message is meant to be shown to a person as one line: it says what is
    wrong and where (a file, a key, a theme).
    """


class ConfigError(AsyncpipeError):
    """The configuration (params.yaml or a command-line flag) is invalid."""


class InputError(AsyncpipeError):
    """An input file is missing, unreadable, empty or not in the expected format."""


class OutputError(AsyncpipeError):
    """An output file or folder cannot be written."""


class BusyError(AsyncpipeError):
    """Another asyncpipe run holds the workdir's lock; trying again later can succeed."""


class EmbeddingError(AsyncpipeError):
    """An embedding could not be obtained from the provider.

    `status` is the HTTP status when there was an answer (None for a dropped
    connection or a timeout).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableEmbeddingError(EmbeddingError):
    """A transient provider failure: the same request may succeed later.

    `retry_after` is the delay in seconds the server asked for (RetryInfo or
    Retry-After), when it gave one.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        """The server said the quota is exhausted (HTTP 429)."""
        return self.status == 429


class UnembeddableTextError(EmbeddingError):
    """The provider cannot embed one of the texts; other texts are unaffected."""


class FatalEmbeddingError(EmbeddingError):
    """A provider failure that retrying cannot fix and that stops the run (bad key, bad request)."""


class EmbeddingStopped(EmbeddingError):
    """The engine was stopped (SIGINT/SIGTERM) before this text's answer came.

    Not a failure of the theme: the theme is left unfinished, and `run --resume`
    picks it up.
    """


class DailyQuotaSpent(EmbeddingStopped):
    """No more requests may be sent today: the budget of `gemini.requests_per_day` is spent,
    or the API answered 429 with a per-day quota violation.

    An `EmbeddingStopped`, because the run winds down exactly as after a signal: nothing
    new is sent, the requests in flight finish, the completed puzzles are written and
    marked partial. Retrying would only collect more 429s until midnight Pacific time,
    when Google's daily quotas reset; `run --resume` after that continues the run.
    """
