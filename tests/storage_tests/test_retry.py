from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

from stagetune.storage import open_storage, transient_kind


class WriteLock(threading.Thread):
    """An outside connection that takes SQLite's write lock and keeps it ``seconds``;
    ``releasing`` is when it began to let go (no one else can write before)."""

    def __init__(self, db: Path, seconds: float) -> None:
        super().__init__()
        self.db, self.seconds = db, seconds
        self.locked = threading.Event()
        self.releasing = float("inf")

    def run(self) -> None:
        outside = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        outside.execute("BEGIN IMMEDIATE")
        self.locked.set()
        time.sleep(self.seconds)
        self.releasing = time.monotonic()
        outside.execute("COMMIT")
        outside.close()


def hold_write_lock(db: Path, seconds: float) -> WriteLock:
    """Take SQLite's write lock from outside for ``seconds`` (returns once it is held)."""
    holder = WriteLock(db, seconds)
    holder.start()
    assert holder.locked.wait(10)
    return holder


def test_busy_sqlite_is_retried_until_the_lock_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "busy.db"
    storage = open_storage(f"sqlite:///{db}", busy_timeout=0.1)
    study = optuna.create_study(storage=storage, study_name="s")
    trial_id = storage.create_new_trial(study._study_id)

    holder = hold_write_lock(db, 1.5)  # 15x the busy timeout
    storage.set_trial_system_attr(trial_id, "written", True)  # not held back: written now
    returned = time.monotonic()
    holder.join()

    assert returned >= holder.releasing  # it waited for the lock instead of failing
    assert storage.get_trial(trial_id).system_attrs == {"written": True}
    assert "database is busy (locked) during set_trial_system_attr; retrying" in caplog.text


def test_busy_timeout_comes_from_the_url(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 't.db'}?timeout=2.5")
    optuna.create_study(storage=storage, study_name="s")
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500


def test_retries_end_after_retry_for(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    storage = open_storage(f"sqlite:///{db}", busy_timeout=0.1, retry_for=0.5)
    optuna.create_study(storage=storage, study_name="s")
    holder = hold_write_lock(db, 3.0)
    try:
        with pytest.raises(optuna.exceptions.StorageInternalError) as info:
            optuna.create_study(storage=storage, study_name="t")
        assert transient_kind(info.value) == "busy"
    finally:
        holder.join()


def test_only_busy_and_lost_connections_are_transient() -> None:
    locked = sqlalchemy.exc.OperationalError(
        "UPDATE", {}, sqlite3.OperationalError("database is locked")
    )
    assert transient_kind(locked) == "busy"
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = locked
    assert transient_kind(wrapped) == "busy"
    lost = sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed"))
    lost.connection_invalidated = True
    assert transient_kind(lost) == "disconnect"
    full = sqlalchemy.exc.OperationalError(
        "INSERT", {}, sqlite3.OperationalError("disk I/O error")
    )
    assert transient_kind(full) is None
    assert transient_kind(ValueError("database is locked")) is None


@pytest.mark.postgres
def test_a_server_out_of_connections_is_waited_for_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Many workers can fill max_connections: opening the storage, taking the search
    lock and every storage call wait for a free connection (here: a role limited to the
    three connections that opening a fresh storage needs at once, the schema lock's
    and two of Optuna's, which outside sessions hold for 2 s)."""
    from tests.conftest import StorageSupplier

    url = StorageSupplier("postgres", tmp_path).url()
    role = f"stagetune_limited_{os.getpid()}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 3")
        )
        database = sqlalchemy.make_url(url).database
        connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" OWNER TO {role}'))
    limited = sqlalchemy.make_url(url).set(username=role, password="pw")
    limited_url = limited.render_as_string(hide_password=False)
    outside = sqlalchemy.create_engine(limited_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        holding = [outside.connect() for _ in range(3)]
        with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
            outside.connect()
        assert transient_kind(refused.value) == "full"
        threading.Timer(2.0, lambda: [c.close() for c in holding]).start()
        started = time.monotonic()
        storage = open_storage(limited_url)
        assert time.monotonic() - started > 1.0  # it waited for the slot
        assert "out of connections (max_connections)" in caplog.text
        study = optuna.create_study(storage=storage, study_name="s")
        assert study.study_name == "s"
        storage.backend.engine.dispose()
    finally:
        outside.dispose()
        with admin.connect() as connection:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
                ),
                {"r": role},
            )
            connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" OWNER TO postgres'))
            connection.execute(sqlalchemy.text(f"DROP OWNED BY {role} CASCADE"))
            connection.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
