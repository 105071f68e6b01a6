from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import optuna
import pytest
from optuna.trial import TrialState

from storage import WORKER_ATTR, claim_trial, open_storage, recover_dead_trials

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
