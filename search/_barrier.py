"""The stage barrier: any number of workers, one stage at a time, exactly its budget.

Every worker (a process of ``--workers N``, another terminal, another machine)
runs the same loop on each stage's study:

1. **open** the stage under the search lock: the first worker writes its
   lineage and queues its first trial (the guide's default); the others find
   them.
2. **claim** a slot under the lock: fail orphaned trials (their retries are
   queued), read the stage's trials, and only if its budget has room ask for a
   trial (a queued retry first) and record the worker, its first heartbeat and its
   epoch cap on it. Room: ``finished + running < budget`` for a budget in trials
   (COMPLETE + PRUNED, and RUNNING trials); for a budget in epochs, the epochs the
   finished trials trained plus those the running ones reserved leave room for
   another (``search._budget``, steps 3-5). Counting and creating under one lock
   is what keeps N workers from overshooting the budget.
3. **run** the claimed trial (outside the lock), then claim again.
4. **wait** when no slot is free: the stage ends when its budget is spent and
   no trial runs; until then a RUNNING trial may still fail (its retry needs a
   worker) or end early (pruned: its unspent epochs fund another trial).
5. **close** the stage under the lock: the first worker to get there writes its
   best values on the study; every worker then reads them back from storage,
   so all carry the same values into the next stage.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.search._budget import EPOCH_CAP_ATTR, StageBudget
from stagetune.search._signals import Interrupted, check_interrupted, critical
from stagetune.search._trial import run_trial, stop_trial
from stagetune.storage import (
    StageLineage,
    claim_trial,
    fail_and_retry,
    read_lineage,
    recover_dead_trials,
    search_lock,
    write_lineage,
)

if TYPE_CHECKING:
    import optuna

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TimeoutReached(Exception):
    """The search's deadline passed before this worker claimed another trial."""


#: Seconds between looks at the storage while waiting at the barrier (growing to the max).
POLL_MIN = 0.05
POLL_MAX = 0.25


def open_stage(
    study: optuna.Study,
    lineage: StageLineage,
    *,
    check: Callable[[StageLineage], None],
    first_trial: dict[str, Any],
    reused: optuna.trial.FrozenTrial | None = None,
    on_open: Callable[[], None] | None = None,
) -> StageLineage:
    """Write the stage's lineage and queue its first trial, once among all workers.

    Args:
        study: The stage's study.
        lineage: What this worker would write (not done).
        check: Raises if the stored lineage belongs to another plan.
        first_trial: Parameters of the first trial, queued if the study has no trial
            (nothing is queued when it is empty).
        reused: The first trial already measured (an earlier stage's, ``Stage.incumbent``):
            added to the study as it is instead of queueing ``first_trial``.
        on_open: Called under the lock when the stage is not done yet (notes).

    Returns:
        The lineage in storage (``done`` if another worker closed the stage).
    """
    with search_lock(study._storage, study.study_name):
        stored = read_lineage(study)
        if stored is not None:
            check(stored)
            if stored.done:
                return stored
        else:
            write_lineage(study, lineage)
        if not study.get_trials(deepcopy=False):
            if reused is not None:
                study.add_trial(reused)
            elif first_trial:
                study.enqueue_trial(first_trial)
        if on_open is not None:
            on_open()
        return read_lineage(study) or lineage


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """``(finished, running)``: the stage's COMPLETE + PRUNED trials, and its RUNNING ones."""
    trials = study.get_trials(deepcopy=False, states=(*_FINISHED, TrialState.RUNNING))
    finished = sum(1 for t in trials if t.state in _FINISHED)
    return finished, len(trials) - finished


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # The heartbeat is recorded by search._trial.Heartbeat, not by study.optimize.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def claim_slot(
    study: optuna.Study, budget: StageBudget, max_age: timedelta | None
) -> optuna.Trial | None:
    """Under the search lock: a trial for this worker if the stage's budget has room."""
    with search_lock(study._storage, study.study_name):
        recover_dead_trials(study, max_age=max_age)
        trials = study.get_trials(deepcopy=False)
        cap = budget.claim(trials)
        if cap is None:
            return None
        if any(t.state == TrialState.RUNNING for t in trials):
            # Other workers sample at the same time: a sampler seeded like theirs
            # would suggest the same values.
            study.sampler.reseed_rng()
        trial = _ask(study)
        try:
            claim_trial(trial)
            if budget.unit == "epochs":
                study._storage.set_trial_system_attr(trial._trial_id, EPOCH_CAP_ATTR, cap)
        except BaseException:
            fail_and_retry(study, trial._trial_id)
            raise
        return trial


def run_trials(
    study: optuna.Study,
    *,
    budget: StageBudget,
    objective: Callable[[optuna.Trial], float],
    max_age: timedelta | None,
    on_progress: Callable[[], None] | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    deadline: float | None = None,
) -> bool:
    """Claim and run trials of one stage until its budget is spent and none runs.

    ``callbacks`` are called with ``(study, frozen_trial)`` after each trial this worker
    finishes. Past ``deadline`` (``time.time()``), no trial is claimed:
    :class:`TimeoutReached` is raised instead.

    Returns:
        ``False`` if this worker ran ``budget.attempt_limit`` trials without the
        stage finishing (its trials keep failing); ``True`` when the stage is finished.
    """
    limit = budget.attempt_limit
    attempts = 0
    delay = POLL_MIN
    while True:
        check_interrupted()
        if deadline is not None and time.time() >= deadline:
            raise TimeoutReached
        trial = None
        try:
            with critical():
                if attempts < limit:
                    trial = claim_slot(study, budget, max_age)
        except Interrupted as interrupt:
            if trial is not None:  # claimed just before the signal took effect
                with critical():
                    stop_trial(study, trial._trial_id, interrupt.args[0])
            raise
        if trial is not None:
            attempts += 1
            run_trial(study, trial, objective)
            if callbacks:
                frozen = study._storage.get_trial(trial._trial_id)
                for callback in callbacks:
                    callback(study, frozen)
            delay = POLL_MIN
            if on_progress is not None:
                on_progress()
            continue
        trials = study.get_trials(deepcopy=False)
        running = any(t.state == TrialState.RUNNING for t in trials)
        if budget.finished(trials):
            return True
        if attempts >= limit and not running:
            return False
        if on_progress is not None:
            on_progress()
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)


def close_stage(
    study: optuna.Study,
    make_done: Callable[[StageLineage], StageLineage],
    *,
    on_close: Callable[[], None] | None = None,
) -> StageLineage:
    """Record the stage's best values once; returns what storage holds afterwards.

    ``on_close`` runs under the lock, only in the worker that closes the stage.
    """
    with search_lock(study._storage, study.study_name):
        stored = read_lineage(study)
        if stored is None:
            raise RuntimeError(f"stage study {study.study_name!r} lost its lineage")
        if not stored.done:
            write_lineage(study, make_done(stored))
            if on_close is not None:
                on_close()
        final = read_lineage(study)
        assert final is not None
        return final
