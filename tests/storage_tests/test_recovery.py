from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.spaces import Plan
from stagetune.storage import (
    INTERRUPTED_ATTR,
    WORKER_ATTR,
    claim_trial,
    fail_and_retry,
    find_orphans,
    open_storage,
    recover_dead_trials,
    worker_identity,
)
from stagetune.storage._recovery import _process_stat

# These tests create RUNNING trials with study.ask() to stand for a worker's.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")


def test_trial_of_a_dead_local_process_is_failed_and_retried(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    claim_trial(trial)
    worker = dict(study.trials[0].system_attrs[WORKER_ATTR])
    worker["pid"] = int(dead.stdout)
    storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)

    assert recover_dead_trials(study) == [0]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    retry = study.trials[1]
    assert retry.params == study.trials[0].params
    assert retry.system_attrs["failed_trial"] == 0


def test_live_trial_is_left_alone(sqlite_url: str) -> None:
    study = optuna.create_study(storage=open_storage(sqlite_url), study_name="s")
    trial = study.ask()
    claim_trial(trial)
    assert recover_dead_trials(study, max_age=timedelta(0)) == []
    assert study.trials[0].state == TrialState.RUNNING


def test_unclaimed_trial_is_swept_by_age(sqlite_url: str) -> None:
    study = optuna.create_study(storage=open_storage(sqlite_url), study_name="s")
    study.ask()
    assert recover_dead_trials(study) == []
    assert recover_dead_trials(study, max_age=timedelta(0)) == [0]


def test_trial_whose_heartbeat_stopped_is_failed_and_retried(sqlite_url: str) -> None:
    # a grace of 2 s: SQLite stamps heartbeats in whole seconds, so 1 s could pass for
    # stale after a pause of just over a second between the claim and the first check
    storage = open_storage(sqlite_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    claim_trial(trial)  # records the first heartbeat
    worker = dict(study.trials[0].system_attrs[WORKER_ATTR])
    worker["host"] = "another-machine"  # its pid says nothing here: only the heartbeat counts
    storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
    assert recover_dead_trials(study) == []  # beating recently
    time.sleep(3.5)
    orphans = find_orphans(study)
    assert [(o.number, o.reason) for o in orphans] == [(0, "its worker's heartbeat stopped")]
    assert study.trials[0].state == TrialState.RUNNING  # find_orphans only reads
    assert recover_dead_trials(study) == [0]
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]


def test_a_retry_starts_clean_but_keeps_params_and_links(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.25})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    claim_trial(trial)
    trial.set_user_attr("epochs_run", 3)
    storage.set_trial_system_attr(trial._trial_id, INTERRUPTED_ATTR, "SIGTERM")
    assert fail_and_retry(study, trial._trial_id)
    assert not fail_and_retry(study, trial._trial_id)  # only once
    retry = study.trials[1]
    assert retry.state == TrialState.WAITING
    assert retry.params == {"x": 0.25}
    assert retry.system_attrs["failed_trial"] == 0
    assert retry.system_attrs["retry_history"] == [0]
    assert WORKER_ATTR not in retry.system_attrs
    assert INTERRUPTED_ATTR not in retry.system_attrs
    assert retry.user_attrs == {}


def test_an_old_run_without_heartbeat_is_swept_by_age_on_resume(
    sqlite_url: str, tiny_plan: Plan
) -> None:
    from stagetune.search import StagedSearch

    # What a run without heartbeat leaves behind: a RUNNING trial nobody records.
    storage = open_storage(sqlite_url, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="s/lr", direction="maximize")
    lr = tiny_plan.stage("lr").param("lr").distribution()  # the range the plan searches
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params={"lr": 3e-3},
            distributions={"lr": lr},
        )
    )
    old = datetime.now() - timedelta(hours=1)
    with storage.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE trials SET datetime_start = ?", (old,))

    search = StagedSearch(tiny_plan, storage=sqlite_url, name="s", epochs=2, progress=None)
    result = search.run()

    trials = optuna.load_study(study_name="s/lr", storage=open_storage(sqlite_url)).trials
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1
    assert retries[0].params["lr"] == 3e-3
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert result.stages[0].finished == 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_trial_of_a_local_zombie_is_failed_and_retried(sqlite_url: str) -> None:
    """A worker that died but was not waited for is dead, though its pid still answers."""
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 60
        while (_process_stat(zombie.pid) or ("",))[0] != "Z":  # ended, not yet waited for
            assert time.monotonic() < deadline, "the child did not end within 60 s"
            time.sleep(0.01)
        storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity(zombie.pid))

        orphans = find_orphans(study)
        assert [o.number for o in orphans] == [0]
        assert f"pid {zombie.pid} on this machine" in orphans[0].reason
        assert recover_dead_trials(study) == [0]
        assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    finally:
        zombie.wait(timeout=60)
