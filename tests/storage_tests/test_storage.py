from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from stagetune.storage import StorageError, open_storage, redact, storage_url

if TYPE_CHECKING:
    from tests.conftest import StorageSupplier


def test_default_storage_is_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage(None)
    optuna.create_study(storage=storage, study_name="s")
    assert (tmp_path / "stagetune.db").is_file()


def test_plain_sqlite_path_and_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert storage_url("runs/a.db") == "sqlite:///runs/a.db"
    monkeypatch.setenv("STAGETUNE_TEST_PW", "s3cret")
    assert (
        storage_url("postgresql://me:${STAGETUNE_TEST_PW}@h/db") == "postgresql://me:s3cret@h/db"
    )


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    optuna.create_study(storage=storage, study_name="s")
    with storage.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert mode == "wal"
    assert timeout >= 10_000


def test_heartbeat_is_on_with_retry_callback(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    assert storage.get_heartbeat_interval() is not None
    assert isinstance(
        storage.get_heartbeat_stale_trial_callback(),
        optuna.storages.RetryHeartbeatStaleTrialCallback,
    )


def test_invalid_url_is_a_one_line_error() -> None:
    with pytest.raises(StorageError, match="Invalid storage URL 'not a url'"):
        open_storage("not a url")
    with pytest.raises(StorageError, match="Unknown database in storage URL 'foo://x'"):
        open_storage("foo://x")


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"the directory .*nowhere.* does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="is not writable"):
            open_storage(f"sqlite:///{tmp_path / 'x.db'}")
    finally:
        tmp_path.chmod(0o700)


def test_read_only_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(StorageError, match="No search database at"):
        open_storage(f"sqlite:///{path}", read_only=True)
    assert not path.exists()


def test_read_only_open_of_a_database_without_tables_creates_none(
    storage_supplier: StorageSupplier,
) -> None:
    import sqlalchemy

    url = storage_supplier.url()
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:  # the file (or database) exists, empty
        connection.execute(sqlalchemy.text("SELECT 1"))
    with pytest.raises(StorageError, match=r"holds no Optuna studies \(no Optuna tables\): run"):
        open_storage(url, read_only=True)
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()


def test_passwords_never_appear_in_errors() -> None:
    url = "postgresql://me:hunter2@127.0.0.1:1/db"
    assert "hunter2" not in redact(url)
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert "hunter2" not in str(info.value)
    assert "me:***@127.0.0.1" in str(info.value)


def test_old_optuna_schema_gives_the_upgrade_command_that_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s")
    # Mark the schema as one from an older Optuna (the revision before the current head).
    with storage.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    storage.engine.dispose()

    for read_only in (False, True):
        with pytest.raises(StorageError) as info:
            open_storage(url, read_only=read_only)
        assert f"optuna storage upgrade --storage '{url}'" in str(info.value)

    optuna_cli = Path(sys.executable).parent / "optuna"
    subprocess.run(
        [str(optuna_cli), "storage", "upgrade", "--storage", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert [s.study_name for s in open_storage(url).get_all_studies()] == ["s"]


def test_upgrade_command_keeps_the_password_out() -> None:
    from stagetune.storage._storage import _schema_message

    error = RuntimeError(
        "... Please execute `$ optuna storage upgrade --storage $STORAGE_URL` ..."
    )
    url = "postgresql://me:hunter2@db/s"
    assert "hunter2" not in _schema_message(error, url, url)
    assert "postgresql://me:***@db/s" in _schema_message(error, url, url)
    template = "postgresql://me:${PGPASSWORD}@db/s"
    assert "--storage 'postgresql://me:${PGPASSWORD}@db/s'" in _schema_message(
        error, url, template
    )


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path: Path) -> None:
    # Root-proof (CI runs as root): no permission bits involved.
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match=r"'.*file' is not a directory"):
        open_storage(f"sqlite:///{tmp_path / 'file' / 'x.db'}")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_directory_nobody_can_write_is_a_clear_error() -> None:
    # /proc takes no new files, not even from root.
    with pytest.raises(StorageError, match="the directory '/proc' is not writable"):
        open_storage("sqlite:////proc/stagetune-test.db")
    assert not Path("/proc/stagetune-test.db").exists()


def test_a_pickled_storage_works_and_keeps_its_settings(sqlite_url: str) -> None:
    import pickle

    from stagetune.storage import BufferedStorage

    storage = open_storage(sqlite_url, busy_timeout=2.5, retry_for=7)
    study = optuna.create_study(storage=storage, study_name="s")
    for original in (storage, open_storage(sqlite_url, read_only=True)):
        restored = pickle.loads(pickle.dumps(original))
        assert type(restored) is type(original)
        backend = restored.backend if isinstance(restored, BufferedStorage) else restored
        assert backend.retry_for == (7.0 if original is storage else 600.0)
        with restored.engine.connect() as connection:  # a new engine, set up the same way
            timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        assert (timeout, synchronous) == (2500 if original is storage else 60000, 1)  # NORMAL
    restored = pickle.loads(pickle.dumps(storage))
    optuna.load_study(study_name="s", storage=restored).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
