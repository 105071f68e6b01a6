"""The storage's error for its user: the bottom layer of ``stagetune.storage``."""

from __future__ import annotations


class StorageError(RuntimeError):
    """The storage cannot be opened or used; the message says what to do."""
