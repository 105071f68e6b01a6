"""A worker on another machine, for real: its own hostname and PID namespace.

The "other machine" is a worker started by ``unshare`` in a UTS and PID namespace
that the test makes (root, as in CI); it reaches the test's PostgreSQL server over
loopback like any remote worker would over the network. Its processes cannot be
seen from the other workers (another hostname, another PID namespace), so when it
hangs they find out only from its heartbeat, exactly as across machines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from stagetune.storage import TrialSystemAttr
from tests.conftest import StorageSupplier
from tests.search_tests.nothing_lost import (
    _STARTED,
    assert_nothing_lost,
    finish,
    fresh_trials,
    snapshot,
    studies,
    wait_until,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
OTHER_HOST = "stagetune-other-host"
WORKER_ATTR = TrialSystemAttr.WORKER


def _can_unshare() -> str | None:
    """Why this machine cannot make the namespaces, or ``None`` when it can."""
    try:
        done = subprocess.run(
            ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if done.returncode == 0 else done.stderr.strip() or "unshare failed"


def worker_argv(url: str, name: str, *, trials: int, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "tests.search_tests.host_worker", url, name,
        "--trials", str(trials), "--epochs", str(epochs),
    ]  # fmt: skip


def start_worker(argv: list[str], *, host: str | None = None) -> subprocess.Popen[str]:
    """A worker here, or (``host``) in new UTS + PID namespaces with that hostname.

    The worker leads a process group of its own, so that SIGSTOP/SIGCONT reach
    ``unshare`` and the worker inside its PID namespace together.
    """
    if host is not None:
        argv = [
            "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', host, *argv,
        ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _STARTED.append(process)
    return process


@contextlib.contextmanager
def resumed_at_exit(process: subprocess.Popen[str]) -> Iterator[None]:
    """SIGCONT on the way out, so that a failing test leaves no stopped process behind."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)


def training_trial_of(url: str, name: str, host: str) -> Any:
    """``(stage, trial)`` of a RUNNING trial of a worker on ``host`` that has reported its
    first epoch (its claim, and the search lock, are behind it) and started under a
    second ago (most of its 100 epochs ahead), or ``None``."""
    for stage, trial in fresh_trials(url, name, reporting=True, within=1.0):
        if trial.system_attrs.get(WORKER_ATTR, {}).get("host") == host:
            return stage, trial
    return None


@pytest.fixture
def url(tmp_path: Path) -> str:
    reason = _can_unshare()
    if reason is not None:
        pytest.skip(f"cannot make UTS/PID namespaces here (run as root on Linux): {reason}")
    return StorageSupplier("postgres", tmp_path).url()


def test_a_frozen_worker_on_another_host_is_retried_and_its_late_result_is_dropped(
    url: str,
) -> None:
    budget, epochs = 3, 100
    argv = worker_argv(url, "frozen", trials=budget, epochs=epochs)
    other = start_worker(argv, host=OTHER_HOST)
    with resumed_at_exit(other):
        stage, frozen = wait_until(
            lambda: training_trial_of(url, "frozen", OTHER_HOST),
            process=other,
            what="the other host's worker to start training a trial",
            timeout=180,
        )
        assert frozen.system_attrs[WORKER_ATTR]["host"] == OTHER_HOST
        os.killpg(other.pid, signal.SIGSTOP)  # a hung machine: no heartbeat, no exit
        locals_ = [start_worker(argv), start_worker(argv)]
        # The others fail its trial once its heartbeat is stale, re-run it, and finish
        # the whole search without it.
        for process in locals_:
            code, _, err = finish(process, timeout=300)
            assert code == 0, err
        before = snapshot(url, "frozen")
        study = studies(url, "frozen")[stage]
        failed = study.trials[frozen.number]
        assert failed.state == TrialState.FAIL
        retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == frozen.number]
        assert len(retry) == 1 and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert retry[0].params == failed.params
        assert retry[0].system_attrs[WORKER_ATTR]["host"] != OTHER_HOST
        assert_nothing_lost(url, "frozen", budget=budget, epochs=epochs)
    # Resumed, the frozen worker finishes its trial late: it must not count twice
    # nor overwrite the retry, and the worker ends normally.
    code, out, err = finish(other, timeout=300)
    assert code == 0, err
    assert "Traceback" not in err
    assert "done: [3, 3, 3]" in out
    assert_nothing_lost(url, "frozen", budget=budget, epochs=epochs, before=before)
    after = studies(url, "frozen")[stage].trials[frozen.number]
    assert after.state == TrialState.FAIL and after.value is None
    assert after.datetime_complete == failed.datetime_complete


def _terminate_backends(url: str, application_name: str) -> int:
    """``pg_terminate_backend`` on every connection of ``application_name``; how many."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            statement = sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"
            )
            return int(connection.execute(statement, {"name": application_name}).scalar() or 0)
    finally:
        engine.dispose()


def test_a_worker_whose_connections_are_cut_mid_trial_loses_nothing(url: str) -> None:
    budget, epochs = 5, 100
    victim_url = f"{url}?application_name=stagetune-victim"
    argv = worker_argv(victim_url, "cut", trials=budget, epochs=epochs)
    victim = start_worker(argv, host=OTHER_HOST)
    other = None
    cut_trials: list[int] = []
    for _ in range(3):  # up to three times, each while the victim trains a trial
        # one it has just started to train: a cut while it tells or claims would end it
        # (those steps are not retried after a lost connection), and a trial seen by its
        # later reports could be about to end: they reach the database up to a second late.
        # The victim trains alone until its first cut, so that it is caught at least
        # once; after that the other worker shares the trials, and the victim may finish
        # its part before it is caught three times (CI once saw it finish after two).
        found = wait_until(
            lambda: training_trial_of(url, "cut", OTHER_HOST) or victim.poll() is not None,
            what="the victim to start training a trial",
            timeout=180,
        )
        if found is True:  # the victim ended: the search is done
            break
        if not _terminate_backends(url, "stagetune-victim"):
            continue  # no connection of the victim was open: nothing was cut
        cut_trials.append(found[1].number)
        if other is None:
            other = start_worker(worker_argv(url, "cut", trials=budget, epochs=epochs))
        time.sleep(1.5)
    assert cut_trials, "the victim was never cut while it trained a trial"
    assert other is not None
    for process in (victim, other):
        code, out, err = finish(process, timeout=300)
        assert code == 0, f"cut while training trials {cut_trials}: {err}"
        assert f"done: {[budget] * 3}" in out
    assert_nothing_lost(url, "cut", budget=budget, epochs=epochs)
