"""Turning the user's storage argument into an Optuna RDB storage."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy.engine
    from optuna.storages import RDBStorage

#: Where a search lives when no storage is given: a SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///stagetune.db"
#: Seconds between heartbeats of a running trial; a trial whose worker stopped
#: beating for GRACE_PERIOD seconds is failed and retried by the next worker.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
#: Seconds a SQLite connection waits for a lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60.0


class StorageError(RuntimeError):
    """The storage cannot be opened or used; the message says what to do."""


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs.

    Example:
        >>> redact("postgresql://me:secret@127.0.0.1/db")
        'postgresql://me:***@127.0.0.1/db'
    """
    import sqlalchemy.engine

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Not a URL SQLAlchemy can parse: still hide anything that looks like a password.
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def storage_url(storage: str | None) -> str:
    """The SQLAlchemy URL for the user's storage argument.

    ``None`` or ``""`` means :data:`DEFAULT_STORAGE`; a plain path ending in
    ``.db``/``.sqlite``/``.sqlite3`` is read as a SQLite file; anything else must
    be a SQLAlchemy URL. ``${VAR}`` in the URL is replaced by that environment
    variable, so a password need not be written on the command line.

    Example:
        >>> storage_url(None)
        'sqlite:///stagetune.db'
        >>> storage_url("runs/search.db")
        'sqlite:///runs/search.db'
    """
    if not storage:
        return DEFAULT_STORAGE
    if "://" not in storage and storage.endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{storage}"
    return os.path.expandvars(storage)


def _parse(url: str) -> sqlalchemy.engine.URL:
    import sqlalchemy.engine
    from sqlalchemy.exc import ArgumentError

    try:
        return sqlalchemy.engine.make_url(url)
    except ArgumentError:
        raise StorageError(
            f"Invalid storage URL {redact(url)!r}: expected a SQLAlchemy URL such as "
            f"'sqlite:///stagetune.db' or 'postgresql://user@host/db'."
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` for other databases and ``:memory:``."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _check_sqlite_file(path: Path, *, read_only: bool) -> None:
    if read_only:
        if not path.is_file():
            raise StorageError(
                f"No search database at {str(path)!r}: run `stagetune run` first, "
                f"or pass --storage with the URL the search used."
            )
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise StorageError(
            f"Cannot create the search database {str(path)!r}: the directory "
            f"{str(directory)!r} does not exist. Create it or choose another --storage."
        )
    target = path if path.exists() else directory
    if not os.access(target, os.W_OK):
        raise StorageError(
            f"Cannot write the search database {str(path)!r}: {str(target)!r} is not "
            f"writable. Choose another --storage."
        )


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets readers (the dashboard, `stagetune status`) work while a trial
    # writes; with WAL, synchronous=NORMAL still loses nothing when a process
    # crashes (only an OS crash or power loss can drop the last commits).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def open_storage(
    storage: str | None = None,
    *,
    read_only: bool = False,
    heartbeat_interval: int | None = HEARTBEAT_INTERVAL,
) -> RDBStorage:
    """Open (and, unless ``read_only``, create) the Optuna storage for a search.

    Args:
        storage: A SQLAlchemy URL, a SQLite file path, or ``None`` for
            ``sqlite:///stagetune.db`` in the working directory.
        read_only: For commands that only read (status, dashboard, export): a
            missing SQLite file is an error and no table is created.
        heartbeat_interval: Seconds between trial heartbeats (``None``: off).
            With it on, a trial whose worker died is failed and re-run.

    Returns:
        An ``optuna.storages.RDBStorage``.

    Raises:
        StorageError: The URL is invalid, its driver is missing, its directory
            does not exist or is not writable, or the database cannot be reached.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "s.db")
        >>> open_storage(f"sqlite:///{path}").url.startswith("sqlite:///")
        True
    """
    import warnings

    import optuna
    import sqlalchemy
    import sqlalchemy.exc

    url = storage_url(storage)
    parsed = _parse(url)
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path, read_only=read_only)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        with warnings.catch_warnings():
            # Optuna marks the heartbeat experimental; stagetune relies on it on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
            rdb = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=GRACE_PERIOD if heartbeat_interval else None,
                heartbeat_stale_trial_callback=callback if heartbeat_interval else None,
                skip_table_creation=read_only,
            )
    except sqlalchemy.exc.NoSuchModuleError:
        raise StorageError(
            f"Unknown database in storage URL {redact(url)!r}: use sqlite:// or "
            f"postgresql:// (pip install 'stagetune[postgres]')."
        ) from None
    except ImportError:
        raise StorageError(
            f"The database driver for {redact(url)!r} is not installed: "
            f"pip install 'stagetune[postgres]' for PostgreSQL."
        ) from None
    except sqlalchemy.exc.OperationalError as error:
        reason = str(error.orig).splitlines()[0] if error.orig else "connection failed"
        raise StorageError(
            f"Cannot open storage {redact(url)!r}: {reason.replace(url, redact(url))}"
        ) from None
    except RuntimeError as error:
        # Optuna's schema check: "... Please execute `$ optuna storage upgrade ...`".
        raise StorageError(str(error).replace(url, redact(url))) from None
    except optuna.exceptions.StorageInternalError:
        # Only without table creation: the database exists but holds no Optuna tables.
        raise StorageError(
            f"The database {redact(url)!r} holds no Optuna studies (no tables): run "
            f"`stagetune run` first, or pass --storage with the URL the search used."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()
    return rdb
