"""The RDB storage that stagetune hands out: Optuna's ``RDBStorage`` with retries.

Two things differ from Optuna's class, and both survive pickling (a study passed
to a process pool, joblib or Dask carries its storage):

1. every call that runs in one transaction is retried while the database is
   busy or the connection was lost (see :mod:`stagetune.storage._retry`);
2. a SQLite connection runs with ``synchronous=NORMAL`` and the storage's busy
   timeout; Optuna makes a new engine when it unpickles a storage, and the
   same settings are put on that one.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import RDBStorage

from stagetune.storage._retry import _RETRIED, RETRY_FOR, _retrying


class RetryingRDBStorage(RDBStorage):
    """An ``RDBStorage`` that retries calls failed by a busy or lost database.

    Args:
        url: The database URL, as for ``RDBStorage``.
        retry_for: Seconds a call keeps retrying before it raises.
        sqlite_busy_timeout: For SQLite: seconds a connection waits for a lock
            (``PRAGMA busy_timeout``); ``None`` for other databases.
        **kwargs: ``RDBStorage``'s own options (``engine_kwargs``, heartbeat, ...).

    Example:
        >>> import pickle, tempfile, os
        >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "r.db")
        >>> storage = RetryingRDBStorage(url, retry_for=5, sqlite_busy_timeout=2)
        >>> pickle.loads(pickle.dumps(storage)).retry_for
        5.0
    """

    #: Class default, so that calls made while ``RDBStorage.__init__`` runs retry too.
    retry_for: float = RETRY_FOR

    def __init__(
        self,
        url: str,
        *,
        retry_for: float = RETRY_FOR,
        sqlite_busy_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        if not retry_for >= 0:
            raise ValueError(f"retry_for must be >= 0 seconds, but got {retry_for!r}.")
        self.retry_for = float(retry_for)
        self.sqlite_busy_timeout = sqlite_busy_timeout
        super().__init__(url, **kwargs)
        self._set_up_engine()

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)  # a new engine
        self._set_up_engine()

    def _set_up_engine(self) -> None:
        if self.sqlite_busy_timeout is None:
            return
        import sqlalchemy

        sqlalchemy.event.listen(self.engine, "connect", _sqlite_pragmas(self.sqlite_busy_timeout))
        # Connections opened before (schema creation) did not get the pragmas.
        self.engine.dispose()


for _name in _RETRIED:
    if hasattr(RDBStorage, _name):
        setattr(RetryingRDBStorage, _name, _retrying(_name, getattr(RDBStorage, _name)))


def _sqlite_pragmas(busy_timeout: float) -> Any:
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # WAL (set on the file by open_storage) lets readers (the dashboard, `stagetune
        # status`) work while a trial writes; with WAL, synchronous=NORMAL still loses
        # nothing when a process crashes (only an OS crash or power loss can drop the
        # last commits).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return on_connect
