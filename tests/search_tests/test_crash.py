"""Real faults on a running search: SIGKILL at random points, SIGTERM and SIGINT mid-trial."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from stagetune.search import StagedSearch
from stagetune.spaces import default_plan
from stagetune.storage import INTERRUPTED_ATTR, WORKER_ATTR, open_storage
from tests.search_tests.nothing_lost import (
    assert_nothing_lost,
    finish,
    fresh_trials,
    running_trials,
    snapshot,
    stagetune,
    start,
    studies,
    wait_until,
)


def is_of(trial: FrozenTrial, pid: int) -> bool:
    return trial.system_attrs.get(WORKER_ATTR, {}).get("pid") == pid


def mid_trial(url: str, pid: int, finished: int) -> Callable[[], bool]:
    """True once the search has ``finished`` trials and worker ``pid`` runs one."""

    def check() -> bool:
        mine = [t for _, t in running_trials(url, "k") if is_of(t, pid)]
        return len(snapshot(url, "k")) >= finished and bool(mine)

    return check


def test_sigkill_at_five_random_points_loses_nothing(tmp_path: Path) -> None:
    """Five workers in turn, each killed at a seeded random point while the next one
    (started before the kill, so it joins the search) takes over; the last finishes."""
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    argv = stagetune(url, "k", trials=5, epochs=30)
    rng = random.Random(5)
    target = 0
    killed: set[int] = set()
    process = start(argv)
    for round_ in range(5):
        successor = start(argv)
        # After 1-2 more finished trials (of 15), and a random delay into one of this
        # worker's trials: mid-training, reporting, telling, or claiming the next.
        target = min(target + rng.randint(1, 2), 11)
        # Trials of 30 epochs outlast the delay, so most kills land inside a trial.
        delay = rng.uniform(0.0, 0.3)
        wait_until(
            mid_trial(url, process.pid, target),
            process=process,
            what=f"{target} finished trials and a running one",
        )
        time.sleep(delay)
        before = snapshot(url, "k")
        os.kill(process.pid, signal.SIGKILL)
        finish(process, timeout=60)
        assert process.returncode == -signal.SIGKILL, f"round {round_}: the worker ended first"
        killed.add(process.pid)
        after = snapshot(url, "k")
        assert {k: v for k, v in after.items() if k in before} == before  # finished stay
        process = successor

    before = snapshot(url, "k")
    code, _, err = finish(process)
    assert code == 0, err
    counts = assert_nothing_lost(url, "k", budget=5, epochs=30, before=before)
    failed = [
        t
        for study in studies(url, "k").values()
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    ]
    # Only killed workers' trials failed (one per kill that landed inside a trial, most of
    # them); each was re-run with its params (up to 3 times). A worker killed between
    # creating its trial and recording its pid leaves a trial without a worker: recovery
    # fails it by heartbeat or age all the same.
    pids = [t.system_attrs[WORKER_ATTR]["pid"] for t in failed if WORKER_ATTR in t.system_attrs]
    assert set(pids) <= killed
    assert len(pids) == len(set(pids))  # a worker runs one trial at a time
    assert counts["failed"] == len(failed) >= 2
    assert counts["retries"] == counts["failed"] - counts["exhausted"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_fail_the_running_trial_which_reruns_on_resume(
    tmp_path: Path, signum: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    process = start(stagetune(url, "t", trials=2, epochs=60))
    # trial 1 (or a later one), just started: the signal lands inside it
    stage, trial = wait_until(
        lambda: [(s, t) for s, t in fresh_trials(url, "t") if t.number >= 1],
        process=process,
        what="trial 1 to start",
    )[0]
    os.kill(process.pid, signum)
    code, _, err = finish(process, timeout=120)
    assert code == 128 + signum, err
    assert "queued to run again" in err
    assert "Traceback" not in err

    # The trial the signal stopped: the one just seen starting.
    failed = [
        (s, t) for s, study in studies(url, "t").items() for t in study.trials
        if t.state == TrialState.FAIL
    ]  # fmt: skip
    assert len(failed) == 1
    stopped_stage, stopped = failed[0]
    assert (stopped_stage, stopped.number) == (stage, trial.number)
    assert stopped.system_attrs[INTERRUPTED_ATTR] == signum.name
    study = studies(url, "t")[stopped_stage]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert len(retry) == 1
    assert retry[0].state == TrialState.WAITING
    assert retry[0].params == stopped.params
    assert not running_trials(url, "t")

    # Resume (in this process: the same search with the same plan).
    before = snapshot(url, "t")
    search = StagedSearch(
        default_plan("mlp", n_trials=2), storage=url, name="t", epochs=60, progress=None
    )
    search.run()
    assert_nothing_lost(url, "t", budget=2, epochs=60, before=before)
    rerun = optuna.load_study(study_name=study.study_name, storage=open_storage(url))
    assert rerun.trials[retry[0].number].state in (TrialState.COMPLETE, TrialState.PRUNED)
