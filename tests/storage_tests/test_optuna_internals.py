"""The private Optuna names stagetune's storage relies on are all there, in the tested Optuna.

When this fails after an Optuna upgrade, its message names what changed; see
``stagetune/storage/_optuna_internals.py`` (``storage/_optuna_internals.py`` in the checkout)
for where each name is used, then run ``tests/storage_tests/test_contract.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from stagetune.storage._optuna_internals import TESTED_OPTUNA, missing

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_optuna_name_the_storage_uses_is_there() -> None:
    rdb = optuna.storages.RDBStorage("sqlite:///:memory:")
    problems = missing(rdb)
    assert not problems, (
        f"Optuna {optuna.__version__} changed private names that stagetune's storage relies "
        f"on (BufferedStorage, find_orphans): {'; '.join(problems)}. Adapt "
        "storage/_buffered.py / storage/_recovery.py, or keep optuna within "
        f"{', '.join(TESTED_OPTUNA)} (pyproject.toml)."
    )


def test_the_installed_optuna_is_a_tested_one() -> None:
    release = ".".join(optuna.__version__.split(".")[:2])
    assert release in TESTED_OPTUNA, (
        f"Optuna {optuna.__version__} is installed, but stagetune's storage was tested only "
        f"with {', '.join(TESTED_OPTUNA)}: it relies on Optuna's private storage internals. "
        "Run tests/storage_tests/ (the contract and this file) against it, then add it to "
        "TESTED_OPTUNA in storage/_optuna_internals.py and to the pin in pyproject.toml."
    )


def test_pyproject_pins_optuna_to_the_tested_releases() -> None:
    pins = re.findall(r'"optuna([<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    major, minor = TESTED_OPTUNA[-1].split(".")
    assert pins == [f">={TESTED_OPTUNA[0]},<{major}.{int(minor) + 1}"]


def test_a_name_that_is_gone_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.storages._rdb import models

    monkeypatch.delattr(optuna.storages.RDBStorage, "_get_stale_trial_ids")
    monkeypatch.delattr(models, "TrialHeartbeatModel")
    monkeypatch.setattr(
        optuna.storages._CachedStorage, "get_all_trials", lambda self, study_id: []
    )
    assert missing() == [
        "optuna.storages._CachedStorage.get_all_trials: no parameter 'deepcopy'",
        "optuna.storages._CachedStorage.get_all_trials: no parameter 'states'",
        "optuna.storages._rdb.models.TrialHeartbeatModel is gone",
        "optuna.storages.RDBStorage._get_stale_trial_ids is gone",
    ]


def test_the_cached_storages_direct_read_is_retried_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """_CachedStorage reads trials through RDBStorage._get_trials, past the public
    methods: RetryingRDBStorage retries it too, and its absence is named."""
    from stagetune.storage._rdb import RetryingRDBStorage

    assert RetryingRDBStorage._get_trials is not optuna.storages.RDBStorage._get_trials
    monkeypatch.delattr(optuna.storages.RDBStorage, "_get_trials")
    assert "optuna.storages.RDBStorage._get_trials is gone" in missing()
