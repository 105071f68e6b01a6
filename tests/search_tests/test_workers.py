"""Several worker processes on one search: real faults, and nothing lost."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from stagetune.search import StagedSearch
from stagetune.spaces import default_plan
from stagetune.storage import INTERRUPTED_ATTR, WORKER_ATTR
from stagetune.storage._recovery import _process_stat
from tests.conftest import StorageSupplier
from tests.search_tests.nothing_lost import (
    STAGES,
    assert_nothing_lost,
    finish,
    fresh_trials,
    running_trials,
    stagetune,
    start,
    studies,
    wait_until,
    workers_of,
)


def wait_until_both_mid_trial(
    url: str, name: str, process: Any, *, before_epoch: int | None = None
) -> None:
    """Wait until two workers each run a trial that has reported an epoch (and, with
    ``before_epoch``, fewer than that many: on a loaded machine one worker may start
    its trial late, when the other's is nearly done; the next stage starts both at
    once, after the barrier)."""

    def mid(trial: Any) -> bool:
        reported = len(trial.intermediate_values)
        return reported > 0 and (before_epoch is None or reported < before_epoch)

    wait_until(
        lambda: len(workers_of([t for _, t in running_trials(url, name) if mid(t)])) == 2,
        process=process,
        what="both workers to be mid-trial",
    )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie no longer does)."""
    stat = _process_stat(pid)
    return stat is not None and stat[0] != "Z"


def all_trials(url: str, name: str) -> list[Any]:
    return [t for study in studies(url, name).values() for t in study.trials]


def test_four_workers_started_at_once_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    processes = [start(stagetune(url, "four", trials=5, epochs=4)) for _ in range(4)]
    results = [finish(p) for p in processes]
    for code, _, err in results:
        assert code == 0, err  # none died on "table already exists" or a lock
        assert "Traceback" not in err
    assert_nothing_lost(url, "four", budget=5, epochs=4)
    trials = all_trials(url, "four")
    assert not [t for t in trials if t.state == TrialState.FAIL]
    assert len(workers_of(trials)) >= 2  # they shared the work


def test_outside_write_lock_longer_than_the_busy_timeout_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    url = f"sqlite:///{db}?timeout=0.2"  # each lock wait gives up after 0.2 s
    process = start(stagetune(url, "lock", "--workers", "2", trials=4, epochs=30))
    wait_until_both_mid_trial(url, "lock", process)
    outside = sqlite3.connect(db, timeout=10, isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")  # the write lock, for 15x the busy timeout
    time.sleep(3.0)
    outside.execute("COMMIT")
    outside.close()
    code, _, err = finish(process)
    assert code == 0, err
    assert "database is busy (locked)" in err  # the workers did hit the lock, and retried
    assert "Should not reach" not in err
    assert "Traceback" not in err
    assert_nothing_lost(url, "lock", budget=4, epochs=30)
    assert not [t for t in all_trials(url, "lock") if t.state == TrialState.FAIL]


def stage_windows(url: str, name: str) -> list[tuple[Any, Any]]:
    """(last finish, first start) of each stage's trials."""
    windows = []
    for study in studies(url, name).values():
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        windows.append(
            (
                max(t.datetime_complete for t in finished),
                min(t.datetime_start for t in study.trials if t.datetime_start is not None),
            )
        )
    return windows


@pytest.mark.slow
def test_two_workers_hold_the_stage_barrier(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    code, _, err = finish(start(stagetune(url, "bar", "--workers", "2", trials=4, epochs=6)))
    assert code == 0, err
    assert_nothing_lost(url, "bar", budget=4, epochs=6)
    windows = stage_windows(url, "bar")
    for (last_finish, _), (_, next_start) in itertools.pairwise(windows):
        assert next_start >= last_finish  # no trial of stage N+1 before stage N finished
    trials = all_trials(url, "bar")
    assert len(workers_of(trials)) == 2


@pytest.mark.postgres
def test_kill_one_of_two_postgres_workers_the_other_finishes(tmp_path: Path) -> None:
    url = StorageSupplier("postgres", tmp_path).url()
    # Trials of 100 epochs, the first worker's seen just after it started: it is killed
    # mid-trial, not at the stage barrier with nothing running to fail.
    epochs = 100
    argv = stagetune(url, "pg", trials=4, epochs=epochs)
    first, second = start(argv), start(argv)  # the second joins the first's search
    wait_until(
        lambda: fresh_trials(url, "pg", pid=first.pid),
        process=first,
        what="the first worker to start a trial",
    )
    os.kill(first.pid, signal.SIGKILL)
    finish(first, timeout=60)
    code, _, err = finish(second)
    assert first.returncode == -signal.SIGKILL
    assert code == 0, err
    counts = assert_nothing_lost(url, "pg", budget=4, epochs=epochs)
    assert counts["failed"] == counts["retries"] == 1
    failed = [t for t in all_trials(url, "pg") if t.state == TrialState.FAIL]
    assert failed[0].system_attrs[WORKER_ATTR]["pid"] == first.pid


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_parent_stops_every_worker_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM reaches the workers through the parent; SIGKILL through the kernel
    (each worker asked for SIGTERM when its parent dies)."""
    url = f"sqlite:///{tmp_path / 'term.db'}"
    # Both workers mid-trial (as far as their reports show: they reach the database up to
    # a second late, so one of the two trials may have just ended, and its worker be
    # between trials or at the barrier when the signal comes).
    process = start(stagetune(url, "term", "--workers", "2", trials=2, epochs=60))
    wait_until_both_mid_trial(url, "term", process, before_epoch=30)
    os.kill(process.pid, signum)
    code, _, err = finish(process, timeout=120)
    assert code == (128 + signum if signum == signal.SIGTERM else -signum), err
    workers = workers_of(all_trials(url, "term"))
    assert len(workers) == 2
    wait_until(lambda: not any(map(_alive, workers)), what="both workers to exit", timeout=60)
    assert not running_trials(url, "term")
    stopped = [t for t in all_trials(url, "term") if t.state == TrialState.FAIL]
    assert 1 <= len(stopped) <= 2
    assert {t.system_attrs[INTERRUPTED_ATTR] for t in stopped} == {"SIGTERM"}
    queued = [t for t in all_trials(url, "term") if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in queued) == sorted(
        t.number for t in stopped
    )
    if signum == signal.SIGKILL:
        return  # the resume is the same as after SIGTERM
    search = StagedSearch(
        default_plan("mlp", n_trials=2), storage=url, name="term", epochs=60, progress=None
    )
    search.run()
    assert_nothing_lost(url, "term", budget=2, epochs=60)
    assert set(studies(url, "term")) == set(STAGES)
