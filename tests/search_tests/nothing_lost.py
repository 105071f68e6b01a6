"""The "nothing lost" invariants every fault test checks, and helpers to run workers.

Nothing lost means: every trial a worker finished is COMPLETE or PRUNED in storage
with its value, params and reported steps; no trial is left RUNNING; trial numbers
are unique; each retry links to the trial it replaces (same params); each stage
ends with exactly its budget (finished trials, or trained epochs: the search's
epoch budget exactly, each stage before the last within one trial of its
allowance); every worker carried the same values forward.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from stagetune.search._budget import trained_epochs
from stagetune.storage import WORKER_ATTR, open_storage

STAGES = ("lr", "weight_decay", "regularization")
SEARCHED = {"lr": "lr", "weight_decay": "weight_decay", "regularization": "dropout"}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

Snapshot = dict[tuple[str, int], tuple[str, float | None, dict[str, Any], dict[int, float]]]


def stagetune(
    url: str, name: str, *extra: str, trials: int = 3, epochs: int = 5, budget: int | None = None
) -> list[str]:
    """The command line of a quiet `stagetune run` (``budget``: ``--budget`` instead of
    ``--trials``)."""
    size = ["--trials", str(trials)] if budget is None else ["--budget", str(budget)]
    return [
        sys.executable, "-m", "stagetune", "run", "--storage", url, "--name", name,
        *size, "--epochs", str(epochs), "--quiet", "--threads", "1", *extra,
    ]  # fmt: skip


_STARTED: list[subprocess.Popen[str]] = []


def start(argv: Sequence[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _STARTED.append(process)
    return process


def kill_all() -> None:
    """Stop every process a test started that still runs (a failed test leaves none):
    SIGTERM (a --workers parent passes it on to its workers), then SIGKILL; and close
    the test's readers."""
    close_readers()
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        process.communicate(timeout=30)


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"worker did not finish within {timeout} s: {err[-2000:]}") from None
    return process.returncode, out, err


_READERS: dict[str, optuna.storages.BaseStorage] = {}


def reader(url: str) -> optuna.storages.BaseStorage:
    """One read-only storage per URL for the whole test: a poll then costs a query, not
    an engine and Optuna's schema check (tens to hundreds of milliseconds). It reads
    the database on every call (an ``RDBStorage``, no cache)."""
    if url not in _READERS:
        _READERS[url] = open_storage(url, read_only=True)
    return _READERS[url]


def close_readers() -> None:
    while _READERS:
        _, storage = _READERS.popitem()
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def studies(url: str, name: str, stages: Sequence[str] = STAGES) -> dict[str, optuna.Study]:
    storage = reader(url)
    found = {s.study_name for s in storage.get_all_studies()}
    return {
        stage: optuna.load_study(study_name=f"{name}/{stage}", storage=storage)
        for stage in stages
        if f"{name}/{stage}" in found
    }


def wait_until(
    condition: Callable[[], Any], *, timeout: float = 120, process: Any = None, what: str = ""
) -> Any:
    """Poll ``condition`` (exceptions count as false) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            err = process.stderr.read()[-2000:]
            raise AssertionError(f"the worker ended before {what}: {err}")
        try:
            result = condition()
        except Exception:
            result = None
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def running_trials(
    url: str, name: str, stages: Sequence[str] = STAGES
) -> list[tuple[str, FrozenTrial]]:
    return [
        (stage, trial)
        for stage, study in studies(url, name, stages).items()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ]


#: A running trial that started less than this many seconds ago has most of its training
#: ahead of it (every fault test's trials train for seconds), so a signal sent at once
#: lands inside it. Its reports would not tell: they reach the database up to a second late.
FRESH = 0.25


def fresh_trials(
    url: str,
    name: str,
    *,
    pid: int | None = None,
    stages: Sequence[str] = STAGES,
    reporting: bool = False,
    within: float = FRESH,
) -> list[tuple[str, FrozenTrial]]:
    """The running trials (of worker ``pid``, or any) that started under ``within``
    seconds ago, with their stages; with ``reporting``, only those that have reported an
    epoch (the first report is written at once): their worker has left the claim, and
    the search lock, behind it."""
    now = datetime.now()  # Optuna stamps datetime_start with the local clock
    return [
        (stage, t)
        for stage, t in running_trials(url, name, stages)
        if t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() < within
        and (pid is None or t.system_attrs.get(WORKER_ATTR, {}).get("pid") == pid)
        and (t.intermediate_values or not reporting)
    ]


def snapshot(url: str, name: str, stages: Sequence[str] = STAGES) -> Snapshot:
    """Every finished trial: state, value, params and reported steps."""
    return {
        (stage, t.number): (t.state.name, t.value, dict(t.params), dict(t.intermediate_values))
        for stage, study in studies(url, name, stages).items()
        for t in study.get_trials(deepcopy=False, states=FINISHED)
    }


def workers_of(trials: Sequence[FrozenTrial]) -> set[int]:
    return {t.system_attrs[WORKER_ATTR]["pid"] for t in trials if WORKER_ATTR in t.system_attrs}


def assert_nothing_lost(
    url: str,
    name: str,
    *,
    budget: int | None = None,
    epochs: int,
    epoch_budget: int | None = None,
    before: Snapshot | None = None,
    stages: Sequence[str] = STAGES,
) -> dict[str, int]:
    """Check the invariants; returns counts of failed trials and retries.

    Args:
        budget: Finished trials of every stage (a plan counting trials).
        epoch_budget: Trained epochs of all ``stages`` together (a plan with a budget).
    """
    found = studies(url, name, stages)
    assert list(found) == list(stages), f"missing stage studies: {set(stages) - set(found)}"
    assert (budget is None) != (epoch_budget is None), "give budget or epoch_budget"
    failed_total = retries_total = exhausted = 0
    carried: dict[str, Any] = {}
    spent_total = 0
    for position, (stage, study) in enumerate(found.items()):
        trials = study.trials
        numbers = [t.number for t in trials]
        assert sorted(numbers) == list(range(len(trials))), (stage, numbers)
        states = [t.state for t in trials]
        assert TrialState.RUNNING not in states, (stage, states)
        finished = [t for t in trials if t.state in FINISHED]
        if budget is not None:
            assert len(finished) == budget, (stage, [s.name for s in states])
        else:
            spent = sum(trained_epochs(t) for t in finished)
            allowance = study.user_attrs["stagetune_budget"]
            assert study.user_attrs["stagetune_budget_unit"] == "epochs", stage
            if position == len(found) - 1:
                assert spent == allowance, (stage, spent, allowance)
            else:  # what is left (less than a trial) goes to the next stage
                assert allowance - epochs < spent <= allowance, (stage, spent, allowance)
            spent_total += spent
        for trial in finished:
            assert SEARCHED[stage] in trial.params, (stage, trial.number, trial.params)
            for key, value in carried.items():
                assert trial.params[key] == value, (stage, trial.number, key)
            steps = sorted(trial.intermediate_values)
            assert steps == list(range(1, len(steps) + 1)), (stage, trial.number, steps)
            if trial.state == TrialState.COMPLETE:
                assert steps == list(range(1, epochs + 1)), (stage, trial.number, steps)
                assert trial.value == trial.intermediate_values[epochs]
        by_number = {t.number: t for t in trials}
        for failed in (t for t in trials if t.state == TrialState.FAIL):
            failed_total += 1
            retries = [
                t
                for t in trials
                if (t.system_attrs.get("retry_history") or [None])[-1] == failed.number
            ]
            history = failed.system_attrs.get("retry_history", [])
            if len(history) >= 3:
                exhausted += 1  # retried as often as allowed: a fresh trial took its slot
                continue
            assert len(retries) == 1, (stage, failed.number, [t.number for t in retries])
            retry = retries[0]
            retries_total += 1
            original = failed.system_attrs.get("failed_trial", failed.number)
            assert retry.system_attrs["failed_trial"] == original
            for key, value in failed.params.items():
                assert retry.params[key] == value, (stage, failed.number, key)
            assert retry.state in (*FINISHED, TrialState.FAIL), retry.state
        for trial in trials:
            for number in trial.system_attrs.get("retry_history", []):
                assert by_number[number].state == TrialState.FAIL
        best = study.user_attrs["stagetune_best_params"]
        assert study.user_attrs["stagetune_done"] is True
        carried.update(best)
    if epoch_budget is not None:
        assert spent_total == epoch_budget, (spent_total, epoch_budget)
    if before is not None:
        after = snapshot(url, name, stages)
        for key, value in before.items():
            assert after.get(key) == value, (key, value, after.get(key))
    return {"failed": failed_total, "retries": retries_total, "exhausted": exhausted}
