"""Ask/tell: a job outside this process takes part in a search as a worker.

A shell script, a job scheduler or a program in another language trains a trial
with its own code; stagetune hands out the trials and keeps the stages. The
protocol, each step one call (``stagetune ask`` / ``tell-epoch`` / ``tell`` /
``tell-fail`` on the command line, :class:`AskTell` in Python):

1. **ask**: walk the stages as a worker does (``StagedSearch.advance``): the
   stages that are done are carried forward, a stage whose budget is spent is
   closed, and a trial of the current stage is claimed under the stage barrier
   (``_barrier.claim_slot``), so that askers and ``stagetune run`` workers share
   one budget exactly. The trial belongs to the asking process (by default the
   one that ran ``stagetune ask``, e.g. the shell script): while it lives, the
   trial is its; when it is gone without telling, the next ask or worker fails
   the trial and queues its retry, as for a worker killed with ``kill -9``.
   With no free slot (other trials of the stage still run) ask waits.
2. **report** an epoch: its metric goes to the stage's pruner; the answer is
   whether to stop. When the pruner stops the trial, it is PRUNED at once.
3. **tell** the final value (COMPLETE), or **fail** it (FAIL; the stage then
   runs another trial in its place).

The curves and diagnoses reported are written on the trial as for any trial,
so notes, the report and the export read them the same way.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.objectives import ReportLog
from stagetune.search import _barrier
from stagetune.search._budget import CappedPruner
from stagetune.search._search import (
    OpenStage,
    SearchError,
    SearchResult,
    StagedSearch,
    what_spent,
)
from stagetune.search._signals import check_interrupted, critical
from stagetune.search._trial import tell as tell_state
from stagetune.storage import (
    TrialAttr,
    TrialSystemAttr,
    open_storage,
    read_settings,
    search_stages,
    worker_identity,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from stagetune.spaces import Plan, Stage


class NoTrialYet(SearchError):
    """No trial could be claimed before the timeout: other trials of the stage still run."""


@dataclass(frozen=True)
class AskedTrial:
    """A trial handed out by ask: train it with ``params`` and tell the result.

    Attributes:
        trial_id: The id to report and tell with (unique in the storage).
        study: The stage's study, ``"<search>/<stage>"``.
        stage: The stage's name.
        number: The trial's number in its study.
        params: Every parameter of the trial (searched, carried and defaults).
        seed: The seed to train with.
        epochs: Epochs to train.
        direction: ``"minimize"`` or ``"maximize"`` the reported metric.
    """

    trial_id: int
    study: str
    stage: str
    number: int
    params: dict[str, Any]
    seed: int
    epochs: int
    direction: str

    def to_json(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "study": self.study,
            "stage": self.stage,
            "number": self.number,
            "params": self.params,
            "seed": self.seed,
            "epochs": self.epochs,
            "direction": self.direction,
        }


@dataclass
class AskTell:
    """The ask/tell side of a staged search.

    Args:
        search: The search: its plan, name, storage and a
            :class:`~stagetune.objectives.TrainFunction` (``fn`` may be ``None``)
            or a Task; trials run outside, whatever ``fn`` is.
        owner: Process that owns the trials this object asks for (default: this
            one); a trial whose owner is gone is failed and retried.
        poll: Seconds between looks at the storage while ask waits.

    Example:
        >>> import os, tempfile
        >>> from stagetune.objectives import TrainFunction
        >>> from stagetune.spaces import core_plan
        >>> db = os.path.join(tempfile.mkdtemp(), "s.db")
        >>> search = StagedSearch(core_plan("mlp", n_trials=1), train=TrainFunction(None,
        ...     name="ext"), storage=db, epochs=1, progress=None)
        >>> session = AskTell(search)
        >>> while (trial := session.ask()) is not None:
        ...     stop = session.report(trial.trial_id, 1, 1.0 / trial.params["lr"])
        ...     session.tell(trial.trial_id, 1.0 / trial.params["lr"])
        'COMPLETE'
        'COMPLETE'
        'COMPLETE'
        >>> [s.finished for s in session.search.result().stages]
        [1, 1, 1]
    """

    search: StagedSearch
    owner: int | None = None
    poll: float = field(default=_barrier.POLL_MAX)

    def __post_init__(self) -> None:
        arg = self.search.storage_arg
        beats = getattr(self.search.storage, "get_heartbeat_interval", lambda: None)()
        if beats is not None and (arg is None or isinstance(arg, str)):
            # No heartbeat: an asked trial is kept while its owner lives, not while
            # this (short-lived) process beats.
            clone = self.search.for_worker()
            clone.use_storage(open_storage(arg, heartbeat_interval=None, flush_interval=0))
            self.search = clone

    # -- 1. ask ------------------------------------------------------------------------

    def ask(self, *, timeout: float | None = None) -> AskedTrial | None:
        """Claim the next trial of the current stage; ``None`` when the search is done.

        Args:
            timeout: Seconds to wait for a free slot (``None``: until there is one).

        Raises:
            NoTrialYet: No slot freed within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            check_interrupted()
            step = self.search.advance()
            if isinstance(step, SearchResult):
                return None
            if step.stage.kind == "lr_range_test":
                # A range-test loop runs in this process (ask/tell trials are epochs).
                self.search._optimize(
                    step.study, step.stage, step.index, step.objective, step.budget
                )
                self.search.close(step)
                continue
            # Each asker is a new process with a sampler seeded like the last one's: a
            # fresh seed keeps it from suggesting the values the last one suggested.
            step.study.sampler.reseed_rng()
            with critical():
                trial = _barrier.claim_slot(step.study, step.budget, self.search.max_age)
                if trial is not None:
                    return self._hand_out(step, trial)
            trials = step.study.get_trials(deepcopy=False)
            if step.budget.finished(trials):
                self.search.close(step)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                running = sum(t.state == TrialState.RUNNING for t in trials)
                raise NoTrialYet(
                    f"No trial of stage {step.stage.name!r} is free: {running} running, "
                    f"{step.budget.spent(trials)}/{step.budget.amount} "
                    f"{what_spent(step.budget)}; ask again later."
                )
            time.sleep(self.poll)

    def _hand_out(self, step: OpenStage, trial: optuna.Trial) -> AskedTrial:
        storage = step.study._storage
        storage.set_trial_system_attr(
            trial._trial_id, TrialSystemAttr.WORKER, worker_identity(self.owner)
        )
        storage.set_trial_system_attr(trial._trial_id, TrialSystemAttr.ASKED, True)
        objective = step.objective
        params = dict(sorted(objective.params_for(trial).items()))
        trial.set_user_attr(TrialAttr.CONFIG, params)
        return AskedTrial(
            trial_id=trial._trial_id,
            study=step.study.study_name,
            stage=step.stage.name,
            number=trial.number,
            params=params,
            seed=objective.seed + trial.number,
            epochs=objective.epochs,
            direction=step.study.direction.name.lower(),
        )

    # -- 2. report ---------------------------------------------------------------------

    def report(
        self,
        trial_id: int,
        epoch: int,
        metric: float,
        *,
        train_loss: float | None = None,
        val_loss: float | None = None,
    ) -> bool:
        """Report one epoch of a running trial; returns whether to stop training it.

        ``True`` means the stage's pruner stopped the trial (or the values were not
        finite): it is PRUNED already, and a later tell is ignored. Reporting an
        epoch again (a retried call) changes nothing.
        """
        import optuna

        study, frozen = self._running(trial_id)
        trial = optuna.Trial(study, trial_id)
        log = ReportLog(trial, frozen.user_attrs)
        with critical():
            try:
                stop = log.add(epoch, metric, train_loss=train_loss, val_loss=val_loss)
            except ValueError as error:
                raise SearchError(f"Trial id {trial_id}: {error}") from None
            if stop:
                tell_state(study, trial, TrialState.PRUNED, None)
        return stop

    # -- 3. tell -----------------------------------------------------------------------

    def tell(self, trial_id: int, value: float | None = None) -> str:
        """Tell a trial's final value (``None``: the last reported); returns its state.

        A trial that the pruner stopped stays PRUNED; a non-finite value prunes it.
        """
        import optuna

        study, frozen = self._trial(trial_id)
        if frozen.state.is_finished():
            if frozen.state.name == "PRUNED":
                return "PRUNED"
            raise SearchError(
                f"Trial id {trial_id} is {frozen.state.name} already"
                + (
                    " (its owner was taken for dead, and its retry runs it again)."
                    if frozen.state.name == "FAIL"
                    else "."
                )
            )
        trial = optuna.Trial(study, trial_id)
        log = ReportLog(trial, frozen.user_attrs)
        if value is None:
            value = log.last_metric()
            if value is None:
                raise SearchError(
                    f"Trial id {trial_id}: tell a value, or report an epoch before telling."
                )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SearchError(f"Trial id {trial_id}: the value must be a number, got {value!r}.")
        with critical():
            if not math.isfinite(value):
                trial.set_user_attr(
                    TrialAttr.PRUNE_REASON, f"the final value {value!r} is not finite"
                )
                return tell_state(study, trial, TrialState.PRUNED, None).name
            if self._stage_of(study).kind == "final":
                trial.set_user_attr(
                    TrialAttr.BEST_EPOCH, log.best_epoch(study.direction.name.lower())
                )
            return tell_state(study, trial, TrialState.COMPLETE, float(value)).name

    def fail(self, trial_id: int, reason: str = "") -> str:
        """Mark a running trial FAIL; the stage runs another trial in its place."""
        import optuna

        study, _ = self._running(trial_id)
        trial = optuna.Trial(study, trial_id)
        with critical():
            if reason:
                trial.set_user_attr(TrialAttr.FAIL_REASON, reason)
            return tell_state(study, trial, TrialState.FAIL, None).name

    # -- reading -------------------------------------------------------------------------

    def _trial(self, trial_id: int) -> tuple[optuna.Study, FrozenTrial]:
        import optuna

        if isinstance(trial_id, bool) or not isinstance(trial_id, int) or trial_id < 0:
            raise SearchError(f"A trial id is an integer >= 0, but got {trial_id!r}.")
        storage = self.search.storage
        try:
            frozen = storage.get_trial(trial_id)
        except KeyError:
            raise SearchError(f"No trial with id {trial_id} in this storage.") from None
        name = self._study_of(trial_id, frozen.number)
        stage = self._stage_named(name) if name is not None else None
        if name is None or stage is None:
            raise SearchError(
                f"Trial id {trial_id} is not a trial of search {self.search.name!r}."
            )
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            # a trial claimed under an epoch budget also stops at its cap
            pruner=CappedPruner(stage.pruner.build(self.search.epochs), self.search.epochs),
        )
        return study, frozen

    def _study_of(self, trial_id: int, number: int) -> str | None:
        """The stage study of this search that holds trial ``trial_id`` (number ``number``)."""
        storage = self.search.storage
        for name, _ in search_stages(storage, self.search.name):
            study_id = storage.get_study_id_from_name(name)
            try:
                if storage.get_trial_id_from_study_id_trial_number(study_id, number) == trial_id:
                    return name
            except KeyError:
                continue
        return None

    def _stage_named(self, study_name: str) -> Stage | None:
        prefix = f"{self.search.name}/"
        return next((s for s in self.search.plan.stages if prefix + s.name == study_name), None)

    def _stage_of(self, study: optuna.Study) -> Stage:
        stage = self._stage_named(study.study_name)
        assert stage is not None  # checked by _trial
        return stage

    def _running(self, trial_id: int) -> tuple[optuna.Study, FrozenTrial]:
        study, frozen = self._trial(trial_id)
        if frozen.state.name != "RUNNING":
            why = (
                " (its owner was taken for dead; its retry runs it again)"
                if frozen.state.name == "FAIL"
                else ""
            )
            raise SearchError(
                f"Trial id {trial_id} is not running: it is {frozen.state.name}{why}."
            )
        return study, frozen


def external_search(
    storage: str | None,
    name: str,
    *,
    plan: Plan | None = None,
    epochs: int | None = None,
    direction: str | None = None,
    metric: str | None = None,
    seed: int = 0,
) -> StagedSearch:
    """The search that ask/tell clients take part in.

    Its settings come from the arguments; those not given, from the search as
    stored (so that ``tell`` needs only the storage and the name), else the ``mlp``
    profile's plan, 20 epochs per trial, minimizing ``metric``.
    """
    import optuna

    from stagetune.objectives import TrainFunction
    from stagetune.spaces import default_plan, plan_from_dict

    backend = open_storage(storage, heartbeat_interval=None, flush_interval=0)
    stages = search_stages(backend, name)
    stored = read_settings(backend, name) if stages else None
    first = optuna.load_study(study_name=stages[0][0], storage=backend) if stages else None
    if plan is None:
        # The stored plan is complete: read as written, not as an inheriting plan file
        # (which would give a plan without an epoch budget the profile's default one).
        plan = plan_from_dict({**stored.plan, "inherit": False}) if stored else default_plan("mlp")
    if epochs is None:
        epochs = int(stored.epochs) if stored else 20
    if direction is None:
        direction = first.direction.name.lower() if first is not None else "minimize"
    if metric is None:
        names = first.metric_names if first is not None else None
        metric = names[0].removeprefix("val_") if names and names[0] else "metric"
    function = TrainFunction(
        None,
        name=stored.task if stored else name,
        metric_name=metric,
        direction=direction,  # type: ignore[arg-type]  # checked by TrainFunction
        epochs=epochs,
    )
    search = StagedSearch(
        plan, train=function, storage=storage, name=name, epochs=epochs, seed=seed, progress=None
    )
    search.use_storage(backend)
    return search


def parent_pid() -> int:
    """The process that started this one (the shell script that ran ``stagetune ask``)."""
    return os.getppid()
