"""Shared fixtures: storages to run searches in, and small plans that train fast."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagetune.spaces import Plan, core_plan

#: Set by .ci/run when it started a PostgreSQL server for the tests.
POSTGRES_URL_ENV = "STAGETUNE_TEST_POSTGRES_URL"


_DATABASES = itertools.count(1)


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


class StorageSupplier:
    """Storage URLs of one kind, each fresh (after optuna.testing.storages)."""

    def __init__(self, mode: str, tmp_path: Path) -> None:
        self.mode = mode
        self._tmp = tmp_path
        self._count = 0

    def url(self) -> str:
        self._count += 1
        if self.mode == "sqlite":
            return f"sqlite:///{self._tmp / f'search{self._count}.db'}"
        url = postgres_url()
        if url is None:
            pytest.skip(f"{POSTGRES_URL_ENV} is not set: .ci/run starts PostgreSQL for these")
        # Numbered across suppliers: a database of an earlier test may still be open.
        number = next(_DATABASES)
        return _fresh_postgres_database(url, f"stagetune_test_{os.getpid()}_{number}")


def _fresh_postgres_database(url: str, name: str) -> str:
    import sqlalchemy

    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_supplier(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSupplier:
    return StorageSupplier(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'search.db'}"


@pytest.fixture
def tiny_plan() -> Plan:
    """The MLP profile's three search stages (lr, weight_decay, regularization), 3 trials
    each: the five-step plan without the range test and the final run."""
    return core_plan("mlp", n_trials=3)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tests train small models: one torch thread keeps them fast and repeatable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
