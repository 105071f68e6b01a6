"""Turning the user's storage argument into an Optuna RDB storage."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagetune.storage._errors import StorageError

if TYPE_CHECKING:
    import sqlalchemy.engine
    from optuna.storages import RDBStorage

    from stagetune.storage._buffered import BufferedStorage

#: Where a search lives when no storage is given: a SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///stagetune.db"
#: Seconds between heartbeats of a running trial; a trial whose worker stopped
#: beating for GRACE_PERIOD seconds is failed and retried by the next worker.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
#: Seconds a SQLite connection waits for a lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60.0
#: Seconds one attempt to connect to PostgreSQL may take (libpq's ``connect_timeout``;
#: a ``?connect_timeout=`` in the URL wins). libpq waits forever by default, so a host
#: that takes the connection but never answers would hang the command. A lost
#: connection during a search is still retried for minutes (storage._retry).
CONNECT_TIMEOUT = 10


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
    url = os.path.expandvars(storage)
    unset = re.findall(r"\$\{(\w+)\}", url)
    if unset:
        raise StorageError(
            f"The storage URL {storage!r} names the environment variable "
            f"{', '.join(unset)}, which is not set: export {unset[0]}=... first, or write "
            f"the value into the URL."
        )
    return url


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


def _check_sqlite_header(path: Path) -> None:
    """A file that exists must be a SQLite database (an empty file becomes one).

    Asked through SQLite, never with ``open()``: closing any other descriptor of a
    database file drops every POSIX lock this process holds on it (SQLite's documented
    pitfall), so a process that polls its own open database this way lets another
    process reset the WAL under it, and its next read sees a malformed image.
    """
    import sqlite3

    if path.stat().st_size == 0:
        return
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        reason = str(error)
        if "not a database" in reason:
            raise StorageError(
                f"{str(path)!r} is not a SQLite database (it does not start with SQLite's "
                f"header), so it holds no search; pass --storage with the database the "
                f"search used, or a new file name to start one."
            ) from None
        if "unable to open" in reason:
            raise StorageError(
                f"Cannot read the search database {str(path)!r} ({reason}). "
                f"Check its permissions or choose another --storage."
            ) from None
        # busy or locked: opening the storage waits for it and reports what remains


def _check_not_another_apps(path: Path) -> None:
    """A SQLite file that holds tables, none of them Optuna's, belongs to something else:
    a search would add Optuna's tables to it."""
    import sqlite3

    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = sorted(name for (name,) in rows)
        finally:
            connection.close()
    except sqlite3.Error:
        return  # locked or unreadable: opening it reports that
    if tables and not set(tables) & set(_OPTUNA_TABLES):
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(
            f"{str(path)!r} is a SQLite database of something else (tables: {shown}), "
            f"not of Optuna; keep searches in a database of their own: pass --storage "
            f"with a new file name."
        )


def _check_sqlite_file(path: Path, *, read_only: bool) -> None:
    if path.is_file():
        _check_sqlite_header(path)
        if not read_only:
            _check_not_another_apps(path)
    if read_only:
        if not path.is_file():
            raise StorageError(
                f"No search database at {str(path)!r}: run `stagetune run` first, "
                f"or pass --storage with the URL the search used."
            )
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise StorageError(
            f"Cannot create the search database {str(path)!r}: the directory "
            f"{str(directory)!r} does not exist. Create it or choose another --storage."
        )
    if not directory.is_dir():
        raise StorageError(
            f"Cannot create the search database {str(path)!r}: {str(directory)!r} is not "
            f"a directory. Choose another --storage."
        )
    if path.is_dir():
        raise StorageError(
            f"Cannot use {str(path)!r} as the search database: it is a directory. "
            f"Choose another --storage."
        )
    # SQLite writes its -wal, -shm and stagetune its -lock file next to the database,
    # so the directory itself must take new files: try it (os.access says yes to root
    # even on read-only or special file systems).
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".stagetune-probe-", dir=directory)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise StorageError(
            f"Cannot write the search database {str(path)!r}: the directory "
            f"{str(directory)!r} is not writable ({error.strerror}). Choose another --storage."
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(
            f"Cannot write the search database {str(path)!r}: the file is not writable. "
            f"Choose another --storage."
        )


def _sqlite_busy_timeout(parsed: sqlalchemy.engine.URL, busy_timeout: float | None) -> float:
    if busy_timeout is not None:
        return float(busy_timeout)
    query = parsed.query.get("timeout")
    if query is None:
        return SQLITE_BUSY_TIMEOUT
    try:
        return float(query if isinstance(query, str) else query[0])
    except ValueError:
        raise StorageError(
            f"Invalid timeout={query!r} in the storage URL: expected seconds, e.g. ?timeout=60."
        ) from None


def _use_wal(path: Path, busy_timeout: float) -> None:
    """Switch the database file to WAL (once: the mode is stored in the file)."""
    import sqlite3

    connection = sqlite3.connect(path, timeout=busy_timeout)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


#: A server database's pool: one connection kept open per process (a worker's trial,
#: its reports and its heartbeat take turns on it); another is opened only while two
#: threads need the database at once, and closed after. The search lock has a
#: connection of its own (storage._locking). Idle pooled connections count against
#: the server's max_connections, which many workers on one database reach first.
_POOL = {"pool_size": 1}

_OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")


def _check_tables(url: str, engine_kwargs: dict[str, Any]) -> None:
    """For read-only commands: the database must hold a complete Optuna schema.

    Optuna's RDBStorage writes while it opens a database whose version tables are
    empty (it stamps them); checking first keeps read-only commands from writing,
    even while a worker is creating the schema.
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
        complete = tables.issuperset(_OPTUNA_TABLES)
        if complete:
            with engine.connect() as connection:
                for table in ("version_info", "alembic_version"):
                    statement = sqlalchemy.text(f"SELECT COUNT(*) FROM {table}")
                    complete = complete and bool(connection.execute(statement).scalar())
    finally:
        engine.dispose()
    if not complete:
        raise StorageError(
            f"The database {redact(url)!r} holds no Optuna studies (no Optuna tables): run "
            f"`stagetune run` first, or pass --storage with the URL the search used."
        )


def _schema_message(error: RuntimeError, url: str, raw: str | None) -> str:
    """Optuna's schema-version error, with the command that fixes it and no password."""
    message = str(error).replace(url, redact(url))
    shown = raw if raw and "${" in raw else redact(url)
    if "optuna storage upgrade" in message:
        return (
            f"The database {redact(url)!r} was created by an older Optuna and its schema "
            f"must be upgraded once (back it up first): "
            f"optuna storage upgrade --storage '{shown}'"
            + (" (put your password in place of ***)" if "***" in shown else "")
        )
    if "pip install -U optuna" in message:
        return (
            f"The database {redact(url)!r} was created by a newer Optuna than this one: "
            f"pip install -U optuna (within stagetune's supported range), then run again."
        )
    return message


def open_storage(
    storage: str | None = None,
    *,
    read_only: bool = False,
    heartbeat_interval: int | None = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    busy_timeout: float | None = None,
    retry_for: float | None = None,
    flush_interval: float | None = None,
) -> RDBStorage | BufferedStorage:
    """Open (and, unless ``read_only``, create) the Optuna storage for a search.

    The schema is created once, under a lock that every worker sees, so that
    workers started at the same moment on a fresh database all succeed. Every
    call to the returned storage is retried while the database is busy (SQLite
    "database is locked", PostgreSQL deadlocks) or the connection was lost, for
    up to ``retry_for`` seconds.

    Args:
        storage: A SQLAlchemy URL, a SQLite file path, or ``None`` for
            ``sqlite:///stagetune.db`` in the working directory.
        read_only: For commands that only read (status, dashboard, export): a
            missing SQLite file or a database without Optuna's tables is an
            error, and no table, file or lock is created.
        heartbeat_interval: Seconds between trial heartbeats (``None``: off).
            With it on, a trial whose worker died is failed and re-run.
        grace_period: Seconds without heartbeat after which a trial is orphaned.
        busy_timeout: Seconds a SQLite connection waits for a lock before an
            attempt fails (default: the URL's ``?timeout=``, else 60).
        retry_for: Seconds a storage call retries a busy or lost database
            before it raises (default 600).
        flush_interval: Seconds a running trial's reports may wait in memory
            before they are committed (default ``stagetune.storage.FLUSH_INTERVAL``, 1 s;
            ``0``: commit each at once). A finished trial is always committed
            whole, before its state.

    Returns:
        For searches, a :class:`~stagetune.storage.BufferedStorage` over Optuna's
        ``RDBStorage`` (fewer round trips per trial); with ``read_only``, the
        ``RDBStorage`` itself.

    Raises:
        StorageError: The URL is invalid or an in-memory SQLite database (unless
            ``read_only``), its driver is missing, its directory
            does not exist or is not writable, the database cannot be reached,
            or its schema is from another Optuna version.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "s.db")
        >>> open_storage(f"sqlite:///{path}").url.startswith("sqlite:///")
        True
    """
    import contextlib
    import warnings

    import optuna
    import sqlalchemy
    import sqlalchemy.exc

    from stagetune.storage._locking import LockTimeoutError, url_lock
    from stagetune.storage._rdb import RetryingRDBStorage
    from stagetune.storage._recovery import retry_callback
    from stagetune.storage._retry import RETRY_FOR, call_retrying

    url = storage_url(storage)
    parsed = _parse(url)
    path = sqlite_path(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    busy = _sqlite_busy_timeout(parsed, busy_timeout) if sqlite else 0.0
    if path is not None:
        _check_sqlite_file(path, read_only=read_only)
    elif sqlite and not read_only:
        # Each connection gets its own empty database, and the pool is replaced below.
        raise StorageError(
            f"An in-memory SQLite database ({redact(url)!r}) cannot hold a search: it "
            f"vanishes with its connection, so nothing could resume, share or browse it; "
            f"pass --storage with a file, e.g. 'sqlite:///stagetune.db'."
        )
    engine_kwargs: dict[str, Any] = {}
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": busy}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    heartbeat = heartbeat_interval if not read_only else None
    try:
        if read_only:
            _check_tables(url, engine_kwargs)
        schema_lock = contextlib.nullcontext() if read_only else url_lock(url, "schema")
        with schema_lock, warnings.catch_warnings():
            if path is not None and not read_only:
                _use_wal(path, busy)
            # Optuna marks the heartbeat experimental; stagetune relies on it on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A server whose max_connections are all in use (many workers) refuses
            # the connection: wait for one to free up, as every later call does.
            rdb = call_retrying(
                "open",
                lambda: RetryingRDBStorage(
                    url,
                    retry_for=RETRY_FOR if retry_for is None else retry_for,
                    sqlite_busy_timeout=busy if sqlite else None,
                    engine_kwargs=engine_kwargs if sqlite else {**engine_kwargs, **_POOL},
                    heartbeat_interval=heartbeat,
                    grace_period=grace_period if heartbeat else None,
                    heartbeat_stale_trial_callback=retry_callback() if heartbeat else None,
                    skip_table_creation=read_only,
                ),
                retry_for=RETRY_FOR if retry_for is None else float(retry_for),
                kinds=("full",),
            )
    except StorageError:
        raise
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
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        raise StorageError(_connection_message(error, url)) from None
    except LockTimeoutError as error:
        raise StorageError(f"Cannot open storage {redact(url)!r}: {error}") from None
    except RuntimeError as error:
        # Optuna's schema check: "... Please execute `$ optuna storage upgrade ...`".
        raise StorageError(_schema_message(error, url, storage)) from None
    if read_only:
        return rdb
    from stagetune.storage._buffered import FLUSH_INTERVAL, BufferedStorage

    return BufferedStorage(
        rdb, flush_interval=FLUSH_INTERVAL if flush_interval is None else flush_interval
    )


def _connection_message(error: BaseException, url: str) -> str:
    import sqlalchemy.exc

    cause: BaseException = error
    while not isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.__cause__ is not None:
        cause = cause.__cause__
    orig = getattr(cause, "orig", None)
    text = str(orig if orig is not None else cause).strip()
    reason = text.splitlines()[0] if text else "connection failed"
    reason = reason.replace(url, redact(url)).rstrip(".")
    sqlite = _parse(url).get_backend_name() == "sqlite"
    fix = (
        "check the file and --storage"
        if sqlite
        else "check that the database server runs and is reachable, and the URL's host, "
        "port, database, user and password, or pass another --storage"
    )
    return f"Cannot open storage {redact(url)!r}: {reason}; {fix}."
