"""Optuna's heartbeat contract, on the search storage, where stagetune changes heartbeats.

Optuna's own heartbeat tests (``tests/storages_tests/test_heartbeat.py`` in its
repository; not shipped in the wheel) check that a RUNNING trial whose heartbeat
stopped for longer than the grace period is failed when the next trial of its
study starts, that its stale-trial callback runs once, and that
``RetryHeartbeatStaleTrialCallback`` queues a retry linked to the failed trial, at
most ``max_retry`` times. stagetune changes the path of every one of these calls
(the write-behind ``BufferedStorage`` over an RDB storage that retries busy
calls, heartbeat on by default, its own retry callback), so the same promises
are checked here on what ``open_storage`` returns, on SQLite and PostgreSQL.

The one deliberate difference from Optuna's callback: a retry does not inherit
the failed attempt's user attributes, nor stagetune's worker record
(see ``stagetune.storage._recovery.RetryCallback``).
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from stagetune.storage import WORKER_ATTR, claim_trial, find_orphans, open_storage
from stagetune.storage._recovery import MAX_RETRY, RetryCallback
from tests.conftest import StorageSupplier

#: Seconds: Optuna's smallest settings (whole seconds), so that the tests wait little.
INTERVAL, GRACE = 1, 1
#: Longer than the grace period even where the database keeps whole seconds (SQLite).
STALE = GRACE + 1.2


def _storage(supplier: StorageSupplier, **kwargs: Any) -> Any:
    return open_storage(supplier.url(), heartbeat_interval=INTERVAL, grace_period=GRACE, **kwargs)


def _ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``; Optuna warns that the heartbeat thread runs only in ``optimize``."""
    with pytest.warns(UserWarning, match="Heartbeat of storage is supposed to be used"):
        return study.ask()


def _retried(trial: optuna.trial.FrozenTrial) -> int | None:
    return trial.system_attrs.get("failed_trial")


def test_the_search_storage_has_a_heartbeat_and_the_retry_callback(
    storage_supplier: StorageSupplier,
) -> None:
    storage = _storage(storage_supplier)
    assert isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat)
    assert optuna.storages._heartbeat.is_heartbeat_enabled(storage)
    assert storage.get_heartbeat_interval() == INTERVAL
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, RetryHeartbeatStaleTrialCallback)
    assert isinstance(callback, RetryCallback)
    assert callback._max_retry == MAX_RETRY


def test_bad_heartbeat_settings_are_refused(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    with pytest.raises(ValueError, match="heartbeat_interval"):
        open_storage(url, heartbeat_interval=-1)
    with pytest.raises(ValueError, match="grace_period"):
        open_storage(url, heartbeat_interval=INTERVAL, grace_period=-1)


def test_a_stale_trial_fails_when_its_study_starts_the_next_and_is_retried(
    storage_supplier: StorageSupplier,
) -> None:
    storage = _storage(storage_supplier)
    first = optuna.create_study(storage=storage, study_name="first")
    second = optuna.create_study(storage=storage, study_name="second")
    stale = _ask(first)
    stale.suggest_float("x", 0, 1)
    other = _ask(second)
    storage.record_heartbeat(stale._trial_id)
    storage.record_heartbeat(other._trial_id)
    time.sleep(STALE)
    assert first.trials[0].state == TrialState.RUNNING  # nothing fails it on its own

    first.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)

    trials = first.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert _retried(trials[1]) == 0
    assert trials[1].params == trials[0].params
    # Only the study that started a trial looks for stale ones.
    assert second.trials[0].state == TrialState.RUNNING


def test_a_beating_trial_stays_running(storage_supplier: StorageSupplier) -> None:
    storage = open_storage(
        storage_supplier.url(), heartbeat_interval=INTERVAL, grace_period=GRACE + 4
    )
    study = optuna.create_study(storage=storage)
    trial = _ask(study)
    storage.record_heartbeat(trial._trial_id)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING
    assert len(study.trials) == 1
    assert find_orphans(study, max_age=None) == []


def test_the_retry_keeps_params_and_links_but_starts_clean(
    storage_supplier: StorageSupplier,
) -> None:
    storage = _storage(storage_supplier, flush_interval=3600)  # reports held in memory
    study = optuna.create_study(storage=storage)
    trial = _ask(study)
    claim_trial(trial)  # stagetune's worker record, and a first heartbeat
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    trial.report(0.5, 1)
    trial.report(0.25, 2)  # held
    trial.set_user_attr("epochs_run", 2)
    storage.set_trial_system_attr(trial._trial_id, "kept", True)
    time.sleep(STALE)
    assert [o.reason for o in find_orphans(study, max_age=None)] == [
        "its worker's heartbeat stopped"
    ]

    fail_stale_trials(study)

    failed, retry = study.trials
    assert failed.state == TrialState.FAIL
    # What the failed attempt wrote is in the database before its state.
    assert failed.intermediate_values == {1: 0.5, 2: 0.25}
    assert failed.user_attrs == {"epochs_run": 2}
    assert retry.state == TrialState.WAITING
    assert (retry.params, retry.distributions) == (failed.params, failed.distributions)
    assert retry.system_attrs["failed_trial"] == failed.number
    assert retry.system_attrs["retry_history"] == [failed.number]
    assert retry.system_attrs["kept"] is True
    assert retry.intermediate_values == {}
    # stagetune's change to Optuna's callback: the retry starts clean.
    assert retry.user_attrs == {}
    assert WORKER_ATTR not in retry.system_attrs


def test_retries_stop_after_max_retry(storage_supplier: StorageSupplier) -> None:
    storage = _storage(storage_supplier)
    study = optuna.create_study(storage=storage)
    for _ in range(MAX_RETRY + 1):
        trial = _ask(study)  # the retry queued last time, or (at the end) a new trial
        storage.record_heartbeat(trial._trial_id)
        time.sleep(STALE)
        fail_stale_trials(study)
    trials = study.trials
    assert len(trials) == MAX_RETRY + 1  # the last failure queued no retry
    assert all(t.state == TrialState.FAIL for t in trials)
    assert _retried(trials[0]) is None
    for number in range(1, MAX_RETRY + 1):
        assert _retried(trials[number]) == 0
        assert trials[number].system_attrs["retry_history"] == list(range(number))


def test_a_pickled_search_storage_keeps_its_heartbeat_and_callback(
    storage_supplier: StorageSupplier,
) -> None:
    storage = _storage(storage_supplier)
    study = optuna.create_study(storage=storage, study_name="s")
    restored = pickle.loads(pickle.dumps(storage))
    assert restored.get_heartbeat_interval() == INTERVAL
    assert isinstance(restored.get_heartbeat_stale_trial_callback(), RetryCallback)
    assert restored.retry_for == storage.retry_for
    # The restored storage fails and retries a stale trial like the original.
    trial = _ask(study)
    trial.suggest_float("x", 0, 1)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(STALE)
    fail_stale_trials(optuna.load_study(study_name="s", storage=restored))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
