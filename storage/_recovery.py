"""Finding trials whose worker died, failing them and queueing their retry.

A RUNNING trial is *orphaned* when nobody will ever finish it:

- its worker ran on this machine and that process is gone (``kill -9``, the OOM
  killer, a closed terminal): stagetune records the host, boot, PID namespace
  and process of every trial's worker, so this is seen at once;
- its worker's heartbeat stopped for longer than the storage's grace period
  (a worker on another machine died, or its machine did);
- it has no heartbeat at all and started longer ago than the grace period (a
  run without heartbeat, or an old version of stagetune).

An orphaned trial is marked FAIL and a retry with the same parameters is
queued (:class:`RetryCallback`), linked to it by the ``failed_trial`` and
``retry_history`` system attributes, so that the stage still ends with exactly
its budget of finished trials.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import optuna

from stagetune.storage._keys import TrialSystemAttr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

#: System attribute naming the process that runs a trial.
WORKER_ATTR = TrialSystemAttr.WORKER
#: System attribute naming the signal that stopped a trial (``"SIGTERM"``, ``"SIGINT"``).
INTERRUPTED_ATTR = TrialSystemAttr.INTERRUPTED
#: Seconds without heartbeat after which a trial with no heartbeat record is orphaned.
DEFAULT_MAX_AGE = timedelta(seconds=30)


def _process_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start)`` of a process (Linux ``/proc/PID/stat``): its state letter
    (``Z`` for a zombie) and its start time in clock ticks since boot, which tells
    reused PIDs apart; ``None`` where there is no such process or no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), to tell reused PIDs apart."""
    stat = _process_stat(pid)
    return None if stat is None else stat[1]


@cache
def _machine() -> dict[str, str | None]:
    """What tells this machine (and PID namespace) apart from others with the same name."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id: str | None = boot.read().strip()
    except OSError:
        boot_id = None
    try:
        pid_namespace: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = None
    return {"host": socket.gethostname(), "boot": boot_id, "pidns": pid_namespace}


def machine_identity() -> dict[str, str | None]:
    """This machine: its host name, boot id and PID namespace."""
    return dict(_machine())


def worker_identity(pid: int | None = None) -> dict[str, Any]:
    """Who runs a trial: host, boot id, PID namespace, process id, its start time, thread.

    Args:
        pid: Another process of this machine that runs the trial (an ask/tell
            client); default: this one.
    """
    own = pid is None
    pid = os.getpid() if pid is None else pid
    return {
        **_machine(),
        "pid": pid,
        "start": _process_start(pid),
        "thread": threading.current_thread().name if own else "ask/tell",
    }


def _is_here(worker: dict[str, Any]) -> bool:
    machine = _machine()
    return all(
        worker.get(key) == machine[key]
        for key in ("host", "boot", "pidns")
        if key == "host" or worker.get(key) is not None
    )


def _is_dead_local(worker: dict[str, Any]) -> bool:
    if not _is_here(worker):
        return False
    pid = int(worker.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    stat = _process_stat(pid)
    if stat is None:
        return False  # no /proc here: os.kill says it runs
    state, started = stat
    # A zombie has ended, but the program that started it has not waited for it yet
    # (a script's ``subprocess.Popen``, a parent that is busy or stopped): its trial
    # will not finish, and its pid stays taken until then.
    if state in ("Z", "X"):
        return True
    start = worker.get("start")
    return start is not None and started != start


def claim_trial(trial: optuna.Trial) -> None:
    """Record on a trial the process that runs it, and its first heartbeat."""
    storage: Any = trial.storage
    storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity())
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(trial._trial_id)


@dataclass(frozen=True)
class Orphan:
    """A RUNNING trial that no live worker will finish, and why."""

    number: int
    trial_id: int
    reason: str


def _heartbeat_stale_ids(study: optuna.Study) -> set[int]:
    # Optuna's private query (the one fail_stale_trials runs): the only way to list stale
    # trials without failing them. Checked by storage/_optuna_internals.py.
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        return set()
    return set(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]


def _has_heartbeat(study: optuna.Study, trial_ids: list[int]) -> set[int]:
    """The trials among ``trial_ids`` that have a heartbeat record (Optuna's private
    heartbeat model; checked by ``storage/_optuna_internals.py``)."""
    backend = getattr(study._storage, "_backend", study._storage)
    if not trial_ids or not hasattr(backend, "scoped_session"):
        return set()
    from optuna.storages._rdb import models

    session = backend.scoped_session()
    try:
        rows = (
            session.query(models.TrialHeartbeatModel.trial_id)
            .filter(models.TrialHeartbeatModel.trial_id.in_(trial_ids))
            .all()
        )
        session.commit()
        return {row[0] for row in rows}
    finally:
        session.close()


def find_orphans(
    study: optuna.Study, *, max_age: timedelta | None = DEFAULT_MAX_AGE
) -> list[Orphan]:
    """The RUNNING trials of ``study`` whose worker is gone; reads only.

    Args:
        study: A stage study.
        max_age: A trial with no heartbeat record older than this is orphaned;
            ``None`` leaves such trials alone.
    """
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale = _heartbeat_stale_ids(study)
    beating = _has_heartbeat(study, [t._trial_id for t in running])
    now = datetime.now()
    orphans = []
    for trial in running:
        worker = trial.system_attrs.get(WORKER_ATTR)
        if worker is not None and _is_dead_local(worker):
            reason = f"its worker (pid {worker.get('pid')} on this machine) is gone"
        elif trial._trial_id in stale:
            reason = "its worker's heartbeat stopped"
        elif (
            max_age is not None
            and trial._trial_id not in beating
            and not (worker is not None and _is_here(worker))
            and trial.datetime_start is not None
            and now - trial.datetime_start > max_age
        ):
            reason = f"it has no heartbeat and started {trial.datetime_start:%Y-%m-%d %H:%M:%S}"
        else:
            continue
        orphans.append(Orphan(trial.number, trial._trial_id, reason))
    return orphans


def fail_and_retry(study: optuna.Study, trial_id: int) -> bool:
    """Mark a RUNNING trial FAIL and queue its retry (same parameters, linked to it).

    Returns:
        ``False`` if the trial had already finished (another worker got there first).
    """
    from optuna.trial import TrialState

    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    callback = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if callback is None:
        callback = retry_callback()
    callback(study, copy.deepcopy(storage.get_trial(trial_id)))
    return True


def recover_dead_trials(
    study: optuna.Study, *, max_age: timedelta | None = DEFAULT_MAX_AGE
) -> list[int]:
    """Fail the orphaned RUNNING trials of ``study`` and queue their retries.

    See :func:`find_orphans` for what counts as orphaned.

    Returns:
        Numbers of the trials that were failed.
    """
    return [
        orphan.number
        for orphan in find_orphans(study, max_age=max_age)
        if fail_and_retry(study, orphan.trial_id)
    ]


#: How often one trial is retried after its worker died before it is given up.
MAX_RETRY = 3


class RetryCallback(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's ``RetryHeartbeatStaleTrialCallback``, whose retry starts clean.

    The retry keeps the failed trial's parameters (and ``fixed_params``) and
    the links to it (``failed_trial``, ``retry_history``), but not the dead
    worker's record, the signal that stopped it, or the user attributes the
    failed attempt wrote. A module-level class, so that a storage holding it pickles.
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        clean = copy.deepcopy(trial)
        for key in (WORKER_ATTR, INTERRUPTED_ATTR):
            clean.system_attrs.pop(key, None)
        clean.user_attrs = {}
        super().__call__(study, clean)


def retry_callback(max_retry: int | None = MAX_RETRY) -> RetryCallback:
    """The callback that queues the retry of an orphaned trial, at most ``max_retry`` times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryCallback(max_retry=max_retry)
