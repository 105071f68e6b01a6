"""A lock that every worker of a search sees: on one machine, or on many through PostgreSQL.

Workers take it for the short steps that must not interleave: creating the
schema, opening a stage, claiming a trial slot (count the stage's trials, then
create one), and closing a stage. It is never held while a trial trains.

- **SQLite**: ``flock`` on a file next to the database (``<db>-lock``), through
  the ``filelock`` package (its soft fallback off: only an OS lock is taken).
  SQLite itself only works among processes of one machine, and so does this
  lock; the kernel drops it when its process dies, ``kill -9`` included.
- **PostgreSQL**: a transaction-level advisory lock (``pg_try_advisory_xact_lock``)
  on a connection of its own, so Optuna's writes on other connections are not
  blocked; the server drops it when the connection closes, so a dead worker
  never holds it.
- **Anything else** (in-memory storages, other databases): a lock among the
  processes of this machine only.
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

_held = threading.local()
_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()


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
    engine = getattr(backend, "engine", None)
    if url is None:
        with _process_lock(f"object:{id(backend)}:{key}", timeout):
            yield
        return
    with url_lock(url, key, engine=engine, timeout=timeout):
        yield


@contextlib.contextmanager
def url_lock(
    url: str,
    key: str,
    *,
    engine: sqlalchemy.engine.Engine | None = None,
    timeout: float = LOCK_TIMEOUT,
) -> Iterator[None]:
    """:func:`search_lock` for a storage URL (``engine``: one to borrow a connection from)."""
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
            with _postgres_lock(url, engine, _advisory_key(key), timeout):
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


def _waits(timeout: float, what: str) -> Iterator[None]:
    """Yields until the caller breaks; sleeps a little longer each time; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        yield
        if time.monotonic() >= deadline:
            raise LockTimeoutError(
                f"Could not get the search lock ({what}) within {timeout:.0f} s: another "
                f"worker holds it. Check for a hung stagetune process."
            )
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


@contextlib.contextmanager
def _postgres_lock(
    url: str, engine: sqlalchemy.engine.Engine | None, key: int, timeout: float
) -> Iterator[None]:
    import sqlalchemy

    own_engine = None
    if engine is None:
        own_engine = engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection, connection.begin():
            for _ in _waits(timeout, "PostgreSQL advisory lock"):
                statement = sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)")
                if connection.execute(statement, {"key": key}).scalar():
                    break
            # Held until this transaction ends (commit when the block ends,
            # rollback on error, or the server drops it with the connection).
            yield
    finally:
        if own_engine is not None:
            own_engine.dispose()


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
