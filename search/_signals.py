"""The signals that stop a search: SIGINT and SIGTERM become :class:`Interrupted`.

SIGTERM and SIGINT raise :class:`Interrupted` in the main thread, except inside
a :func:`critical` block (claiming a trial, telling its result), where the
signal waits until the block ends; the trial that was running is then marked
FAIL and queued to run again with the same parameters (``stagetune.search._trial``),
and the process exits with ``128 + signal``. A third signal ends the process at once.

A bottom layer of ``stagetune.search``: it imports nothing of stagetune.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the worker; its running trial is queued to run again."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _SignalState(threading.local):
    # Thread-local: handlers run in the main thread and read its critical depth;
    # threads that run searches of their own (Python API) keep separate counts.
    received: int = 0
    pending: int | None = None
    depth: int = 0


_signals = _SignalState()


def _on_signal(signum: int, frame: Any) -> None:
    _signals.received += 1
    if _signals.received >= 3:
        os._exit(128 + signum)
    if _signals.received > 1:
        return  # the same stop, delivered twice (terminal and parent): already stopping
    if _signals.depth:
        _signals.pending = signum
        return
    raise Interrupted(signum)


def install_signal_handlers() -> Callable[[], None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted`; returns a function that undoes it.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _signals.received, _signals.pending, _signals.depth = 0, None, 0
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A block that a signal does not cut in two: it raises when the block ends."""
    _signals.depth += 1
    try:
        yield
    except BaseException:
        _signals.depth -= 1
        raise
    _signals.depth -= 1
    check_interrupted()


def check_interrupted() -> None:
    """Raise the :class:`Interrupted` that arrived during a critical block, if any."""
    if _signals.depth == 0 and _signals.pending is not None:
        signum, _signals.pending = _signals.pending, None
        raise Interrupted(signum)
