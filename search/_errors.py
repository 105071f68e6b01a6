"""The errors a search raises for its user: the bottom layer of ``stagetune.search``.

Every module of the package may raise :class:`SearchError`; :func:`user_errors` is the
one list of exception types that mean "bad input, say what to do" (the CLI and the
worker processes print them as one line).
"""

from __future__ import annotations


class SearchError(RuntimeError):
    """A search cannot start or go on; the message says what to do."""


class SearchTimeout(Exception):
    """The search's ``timeout`` passed: no trial was started after it; running the same
    search again resumes it."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that a user's input causes, of every package: printed as one line
    (exit code 2), never as a traceback."""
    from stagetune.objectives import ConfigError, DeviceError, TaskError
    from stagetune.spaces import SpaceError
    from stagetune.storage import SearchNameError, StorageError

    return (
        SpaceError,
        StorageError,
        SearchNameError,
        TaskError,
        ConfigError,
        DeviceError,
        SearchError,
    )
