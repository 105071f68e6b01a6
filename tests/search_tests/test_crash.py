"""A search killed with SIGKILL in stage 2, then run again, ends exactly on budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from storage import open_storage

STAGES = ("lr", "weight_decay", "regularization")


def stagetune(db: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "search", "run", "--storage", f"sqlite:///{db}",
        "--name", "k", "--trials", "3", "--epochs", "25", "--quiet", *extra,
    ]  # fmt: skip


def snapshot(url: str, stage: str) -> list[tuple[int, str, float | None, dict]]:
    study = optuna.load_study(study_name=f"k/{stage}", storage=open_storage(url))
    return [(t.number, t.state.name, t.value, t.params) for t in study.trials]


def wait_for_running_trial(url: str, stage: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the search ended before it could be killed"
        try:
            study = optuna.load_study(study_name=f"k/{stage}", storage=open_storage(url))
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running and running[0].number >= 1:
                return
        except KeyError:
            pass  # the stage's study does not exist yet
        time.sleep(0.05)
    raise AssertionError("no trial of stage 2 started within 120 s")


def test_sigkill_during_stage_2_then_rerun_finishes_exactly_the_budget(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(stagetune(db), env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_running_trial(url, "weight_decay", process)
        stage1 = snapshot(url, "lr")
    finally:
        process.kill()  # SIGKILL, also when waiting failed: never leave a worker behind
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed = snapshot(url, "weight_decay")
    assert any(state == "RUNNING" for _, state, _, _ in killed)

    rerun = subprocess.run(stagetune(db), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    assert snapshot(url, "lr") == stage1
    storage = open_storage(url)
    for stage in STAGES:
        study = optuna.load_study(study_name=f"k/{stage}", storage=storage)
        states = [t.state for t in study.trials]
        assert TrialState.RUNNING not in states
        finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 3, (stage, states)
    wd = optuna.load_study(study_name="k/weight_decay", storage=storage)
    failed = [t for t in wd.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    retry = [t for t in wd.trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retry) == 1
    assert retry[0].params == failed[0].params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
