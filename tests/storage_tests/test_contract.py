"""Optuna's own storage contract, run against every storage stagetune hands out.

``optuna.testing.pytest_storages.StorageTestCase`` is the suite any Optuna storage must
pass (samplers, pruners, the dashboard and integrations rely on it). It runs here
against what :func:`stagetune.storage.open_storage` returns:

- ``search``: the storage of a search (``BufferedStorage`` over the retrying RDB
  storage, heartbeat on), with its default flush interval;
- ``read-only``: what ``status``, ``report``, ``export`` and the dashboard open
  (the retrying RDB storage on an existing database, heartbeat off);

each on SQLite and on PostgreSQL (skipped where ``STAGETUNE_TEST_POSTGRES_URL`` is
not set; ``.ci/run`` sets it). Every test gets a fresh database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from optuna.storages import BaseStorage
from optuna.testing.pytest_storages import StorageTestCase

from stagetune.storage import BufferedStorage, open_storage
from stagetune.storage._rdb import RetryingRDBStorage
from tests.conftest import POSTGRES_URL_ENV, StorageSupplier

KINDS = ("search", "read-only")
_COPIES = itertools.count(1)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A database per backend that a search made, copied for each test (a fresh schema
    costs seconds; a copy a tenth of that): {"sqlite": file path, "postgres": URL}."""
    templates: dict[str, str] = {}
    path = tmp_path_factory.mktemp("contract") / "template.db"
    open_storage(f"sqlite:///{path}", heartbeat_interval=None).engine.dispose()
    with sqlite3.connect(path) as connection:  # everything in the file, nothing in -wal
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    templates["sqlite"] = str(path)
    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if admin_url:
        url = StorageSupplier("postgres", path.parent).url()
        open_storage(url, heartbeat_interval=None).engine.dispose()
        templates["postgres"] = url
    return templates


def _copy(template: dict[str, str], mode: str, tmp_path: Path) -> str:
    if mode == "sqlite":
        path = tmp_path / f"contract{next(_COPIES)}.db"
        shutil.copyfile(template["sqlite"], path)
        return f"sqlite:///{path}"
    if "postgres" not in template:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set: .ci/run starts PostgreSQL for these")
    source = sqlalchemy.engine.make_url(template["postgres"])
    name = f"{source.database}_copy{next(_COPIES)}"
    admin = sqlalchemy.create_engine(source, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(
            sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"')
        )
    admin.dispose()
    return source.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=KINDS)
def storage(
    request: pytest.FixtureRequest,
    storage_supplier: StorageSupplier,
    template: dict[str, str],
    tmp_path: Path,
) -> BaseStorage:
    url = _copy(template, storage_supplier.mode, tmp_path)
    if request.param == "search":
        search = open_storage(url)
        assert isinstance(search, BufferedStorage)
        return search
    read_only = open_storage(url, read_only=True)
    assert isinstance(read_only, RetryingRDBStorage)
    return read_only


class TestStagetuneStorages(StorageTestCase):
    """Optuna's storage contract (46 tests, 59 with their parameters) for each storage."""
