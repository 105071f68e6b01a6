"""Finding trials whose worker died, failing them and queueing their retry.

Optuna's heartbeat notices a dead worker only after its grace period. On the
same machine stagetune knows better: every trial records the host and process
that runs it, so a rerun after a crash (``kill -9``, OOM killer, a closed
terminal) fails the dead process's trials at once and re-runs them with the
same parameters, through the storage's ``RetryHeartbeatStaleTrialCallback``.
"""

from __future__ import annotations

import copy
import os
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

#: System attribute naming the process that runs a trial.
WORKER_ATTR = "stagetune:worker"


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), to tell reused PIDs apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host name, process id and process start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def _is_dead_local(worker: dict[str, Any]) -> bool:
    if worker.get("host") != socket.gethostname():
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
    start = worker.get("start")
    return start is not None and _process_start(pid) not in (None, start)


def claim_trial(trial: optuna.Trial) -> None:
    """Record on a trial the process that runs it."""
    trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_identity())


def recover_dead_trials(study: optuna.Study, *, max_age: timedelta | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker is gone and queue their retries.

    A trial is taken as dead when its worker ran on this host and that process
    no longer exists, or (``max_age``) when it has no worker record and no
    heartbeat and started longer ago than ``max_age``. Trials on other hosts are
    left to the heartbeat.

    Returns:
        Numbers of the trials that were failed.
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    get_callback = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    callback = get_callback() if get_callback is not None else None
    now = datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER_ATTR)
        if worker is not None:
            dead = _is_dead_local(worker)
        else:
            dead = (
                max_age is not None
                and trial.datetime_start is not None
                and now - trial.datetime_start > max_age
            )
        if not dead:
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(trial.number)
        if callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return failed
