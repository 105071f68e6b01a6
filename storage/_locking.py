"""A lock that every worker of a search sees: on one machine, or on many through PostgreSQL.

Workers take it for the short steps that must not interleave: creating the
schema, opening a stage, claiming a trial slot (count the stage's trials, then
create one), and closing a stage. It is never held while a trial trains.

- **SQLite**: ``flock`` on a file next to the database (``<db>-lock``), through
  the ``filelock`` package (its soft fallback off: only an OS lock is taken).
  SQLite itself only works among processes of one machine, and so does this
  lock; the kernel drops it when its process dies, ``kill -9`` included.
- **PostgreSQL**: a transaction-level advisory lock (``pg_advisory_xact_lock``,
  waiting in the server's queue under ``lock_timeout``) on a connection of its
  own, so Optuna's writes on other connections are not blocked; the server drops
  it when the connection closes, so a dead worker never holds it.
- **Anything else** (in-memory storages, other databases such as MySQL): a lock
  among the processes of this machine only; a worker on a second machine is
  refused (``storage._one_machine``).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy.engine

#: Seconds to wait for the lock before giving up with an error.
LOCK_TIMEOUT = 900.0
#: PostgreSQL's SQLSTATE for "canceling statement due to lock timeout".
_LOCK_NOT_AVAILABLE = "55P03"

_held = threading.local()
_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()
_lock_engines: dict[str, sqlalchemy.engine.Engine] = {}


class LockTimeoutError(TimeoutError):
    """The search lock was not free within its timeout."""


def lock_path(database: Path) -> Path:
    """The lock file of a SQLite database: ``<database>-lock`` next to it."""
    return database.with_name(database.name + "-lock")


def _advisory_key(key: str) -> int:
    digest = hashlib.sha256(f"stagetune:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _backend(storage: Any) -> Any:
    # optuna wraps an RDBStorage in a _CachedStorage inside every Study.
    return getattr(storage, "_backend", storage)


@contextlib.contextmanager
def search_lock(storage: Any, key: str, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock named ``key`` of ``storage`` (an Optuna storage) for the ``with`` block.

    Re-entrant within a thread. Raises :class:`LockTimeoutError` after ``timeout``
    seconds of waiting.

    Example:
        >>> import tempfile, os
        >>> from stagetune.storage import open_storage
        >>> s = open_storage(os.path.join(tempfile.mkdtemp(), "s.db"))
        >>> with search_lock(s, "demo/lr"):
        ...     pass
    """
    backend = _backend(storage)
    url = getattr(backend, "url", None)
    if url is None:
        with _process_lock(f"object:{id(backend)}:{key}", timeout):
            yield
        return
    with url_lock(url, key, timeout=timeout):
        _check_one_machine(storage, url, key)
        yield


def _check_one_machine(storage: Any, url: str, key: str) -> None:
    import sqlalchemy.engine

    from stagetune.storage._one_machine import check_one_machine

    check_one_machine(storage, key, sqlalchemy.engine.make_url(url).get_backend_name())


@contextlib.contextmanager
def url_lock(url: str, key: str, *, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """:func:`search_lock` for a storage URL."""
    import sqlalchemy.engine

    parsed = sqlalchemy.engine.make_url(url)
    backend = parsed.get_backend_name()
    token = f"{url}\0{key}" if backend == "postgresql" else url
    held: set[str] = _held.__dict__.setdefault("tokens", set())
    if token in held:
        yield
        return
    held.add(token)
    try:
        if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            with _file_lock(lock_path(Path(parsed.database)), timeout):
                yield
        elif backend == "postgresql":
            with _postgres_lock(url, _advisory_key(key), timeout):
                yield
        else:
            name = hashlib.sha256(url.encode()).hexdigest()[:16]
            with (
                _process_lock(f"url:{url}", timeout),
                _file_lock(Path(tempfile.gettempdir()) / f"stagetune-{name}.lock", timeout),
            ):
                yield
    finally:
        held.discard(token)


def _timeout_error(timeout: float, what: str) -> LockTimeoutError:
    return LockTimeoutError(
        f"Could not get the search lock ({what}) within {timeout:.0f} s: another "
        f"worker holds it. Check for a hung stagetune process."
    )


def _waits(timeout: float, what: str) -> Iterator[None]:
    """Yields until the caller breaks; sleeps a little longer each time; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        yield
        if time.monotonic() >= deadline:
            raise _timeout_error(timeout, what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    import filelock

    # fallback_to_soft=False: where the file system has no flock, filelock would
    # otherwise fall back to a marker file that outlives a killed holder; an error
    # is better than a lock that a dead worker can keep.
    lock = filelock.FileLock(path, timeout=timeout, poll_interval=0.02, fallback_to_soft=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockTimeoutError(
            f"Could not get the search lock ({path}) within {timeout:.0f} s: another "
            f"worker holds it. Check for a hung stagetune process."
        ) from None
    try:
        yield
    finally:
        lock.release()


def _lock_engine(url: str) -> sqlalchemy.engine.Engine:
    """This process's engine for the PostgreSQL lock of ``url``: a connection per lock.

    Not the storage's pool: a worker keeps one connection open for Optuna (see
    ``open_storage``), and the lock's connection, opened before it waits, is closed
    when the lock is released, so a worker that trains holds no second connection.
    """
    import sqlalchemy

    with _process_locks_guard:
        engine = _lock_engines.get(url)
        if engine is None:
            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            _lock_engines[url] = engine
        return engine


@contextlib.contextmanager
def _postgres_lock(url: str, key: int, timeout: float) -> Iterator[None]:
    """Wait in the server's queue for the advisory lock (no polling), at most ``timeout`` s.

    The server hands the lock to the next waiter the moment it is released, so a
    busy search lock is never idle between two claims (polling with
    ``pg_try_advisory_xact_lock`` left it idle for up to a sleep between tries,
    and its tries loaded the server with one query per waiter per sleep).
    """
    import sqlalchemy
    import sqlalchemy.exc

    from stagetune.storage._retry import call_retrying

    # Many workers can fill the server's max_connections: wait for a free one.
    connection = call_retrying(
        "search lock", _lock_engine(url).connect, retry_for=timeout, kinds=("full",)
    )
    with connection, connection.begin():
        # is_local: for this transaction only (SET LOCAL).
        connection.execute(
            sqlalchemy.text("SELECT set_config('lock_timeout', :limit, true)"),
            {"limit": f"{max(1, round(timeout * 1000))}ms"},
        )
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        except sqlalchemy.exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise _timeout_error(timeout, "PostgreSQL advisory lock") from None
            raise
        # Held until this transaction ends (commit when the block ends,
        # rollback on error, or the server drops it with the connection).
        yield


@contextlib.contextmanager
def _process_lock(name: str, timeout: float) -> Iterator[None]:
    with _process_locks_guard:
        lock = _process_locks.setdefault(name, threading.RLock())
    if not lock.acquire(timeout=timeout):
        raise LockTimeoutError(f"Could not get the search lock within {timeout:.0f} s.")
    try:
        yield
    finally:
        lock.release()
