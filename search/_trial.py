"""Running one claimed trial: heartbeat, objective, and a result that is never lost.

``study.optimize`` turns a storage error while it records a result into a
FAIL (or leaves the trial RUNNING, behind ``AssertionError("Should not
reach.")``). Here the result is told inside a :func:`critical` block, through a
storage whose calls retry while the database is busy; a trial that SIGINT or
SIGTERM interrupts is marked FAIL and queued to run again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagetune.search._signals import Interrupted, critical

if TYPE_CHECKING:
    import optuna
    from optuna.trial import TrialState

_logger = logging.getLogger("stagetune.search")


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a daemon thread.

    Unlike Optuna's heartbeat thread it survives a failed write (the database
    was locked): it logs, and beats again at the next interval.
    """

    def __init__(self, storage: Any, trial_id: int, interval: float | None) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self._interval:
            self._thread = threading.Thread(
                target=self._beat, name=f"stagetune-heartbeat-{self._trial_id}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _beat(self) -> None:
        assert self._interval is not None
        try:
            while not self._stop.wait(self._interval):
                try:
                    self._storage.record_heartbeat(self._trial_id)
                except Exception as error:  # keep beating; the next beat may get through
                    _logger.warning(
                        "stagetune: heartbeat of trial id %d failed: %r", self._trial_id, error
                    )
        finally:
            self._storage.remove_session()  # this thread's database connection


def run_trial(
    study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float]
) -> TrialState:
    """Run ``objective`` on a claimed trial and record its result.

    Returns:
        The state the trial ended in, as stored (FAIL if another worker failed it
        as orphaned while it ran).

    Raises:
        Interrupted, KeyboardInterrupt: After the trial was failed and its retry queued.
        Exception: What the objective raised, after the trial was marked FAIL.
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    value: float | None = None
    with Heartbeat(storage, trial._trial_id, interval) as heartbeat:
        try:
            value = objective(trial)
            state = TrialState.COMPLETE
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed this trial while it ran (its heartbeat was late:
            # a hung machine, a cut connection) and queued its retry: what this worker
            # would still write belongs to nobody, and the retry's result stands.
            heartbeat.stop()
            with critical():
                return _taken_over(study, trial)
        except KeyboardInterrupt as interrupt:
            heartbeat.stop()
            name = interrupt.args[0] if isinstance(interrupt, Interrupted) else "SIGINT"
            with critical():
                stop_trial(study, trial._trial_id, name)
            raise
        except Exception:
            heartbeat.stop()
            with critical():
                tell(study, trial, TrialState.FAIL, None)
            raise
    with critical():
        return tell(study, trial, state, value)


def _taken_over(study: optuna.Study, trial: optuna.Trial) -> TrialState:
    """The stored state of a trial another worker finished; logs that its retry runs it."""
    state = study._storage.get_trial(trial._trial_id).state
    _warn_taken_over(trial.number, state)
    return state


def _warn_taken_over(number: int, state: TrialState) -> None:
    _logger.warning(
        "stagetune: trial %d was marked %s by another worker before it finished "
        "(its heartbeat was late); its retry runs it again.",
        number,
        state.name,
    )


def stop_trial(study: optuna.Study, trial_id: int, signal_name: str) -> None:
    """Fail a trial that a signal stopped, with the signal's name, and queue its retry."""
    import optuna

    from stagetune.storage import TrialSystemAttr, fail_and_retry

    # Already failed by another worker: nothing to mark.
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_system_attr(trial_id, TrialSystemAttr.INTERRUPTED, signal_name)
    fail_and_retry(study, trial_id)


def tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None
) -> TrialState:
    """Record a trial's result; returns the stored state.

    The storage retries busy-database errors itself; ``skip_if_finished`` makes
    telling again after a failure that did commit harmless.
    """
    from optuna.trial import TrialState

    if state == TrialState.COMPLETE:
        frozen = study.tell(trial, value, skip_if_finished=True)
    else:
        frozen = study.tell(trial, state=state, skip_if_finished=True)
    if frozen.state != state:
        _warn_taken_over(trial.number, frozen.state)
    return frozen.state
