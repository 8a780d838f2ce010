"""The exceptions asyncpipe raises, in one tree, so callers catch at the right level.

    AsyncpipeError                 anything asyncpipe raises on purpose
    ├── ConfigError                params.yaml or command-line settings are wrong
    ├── InputError                 an input file is missing, empty or malformed
    ├── OutputError                an output cannot be written (permissions, full disk)
    └── EmbeddingError             an embedding could not be obtained
        ├── RetryableEmbeddingError   worth trying again later (throttling, 5xx, timeouts)
        └── FatalEmbeddingError       retrying cannot help (bad key, bad request, unknown text)

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


class EmbeddingError(AsyncpipeError):
    """An embedding could not be obtained from the provider."""


class RetryableEmbeddingError(EmbeddingError):
    """A transient provider failure: the same request may succeed later."""


class FatalEmbeddingError(EmbeddingError):
    """A provider failure that retrying cannot fix."""
