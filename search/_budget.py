"""Stage budgets in trained epochs: how a stage's share is counted, claimed and ended.

A plan with a ``budget`` of ``N`` trial-equivalents gives its search ``B = N x E``
trained epochs (``E``: epochs per trial), split over the stages that have a
``share``; the stage barrier (``search._barrier``) runs this protocol with it:

1. **split** (from the plan, before any training): the budgeted stages, in plan
   order, get cumulative targets ``T_k = round(B x (s_1 + ... + s_k) / S)``
   (``s``: their shares, ``S``: their sum), so the last target is ``B``.
2. **allow** (when stage ``k`` opens; the stages before it are closed, so what
   they spent is fixed in storage): its allowance is ``A_k = T_k -`` the epochs
   the budgeted stages before it trained. What an earlier stage left (less than a
   trial) is spent here instead of lost.
3. **claim** (under the search lock, the barrier's step 2): ``spent`` = the
   epochs of the stage's finished trials (:func:`trained_epochs`: COMPLETE and
   PRUNED, a pruned trial's partial epochs included); ``reserved`` = the cap of
   every RUNNING trial (``E`` if it has none); ``free = A_k - spent - reserved``.
   A stage before the last claims a trial only if ``free >= E``; the last claims
   one if ``free >= 1``, capped at ``min(E, free)`` epochs. The cap is written on
   the trial (``EPOCH_CAP_ATTR``) before the lock is released.
4. **run**: the stage's pruner (:class:`CappedPruner`) stops a trial once it
   trained its cap (PRUNED, reason on the trial). A trial that the stage's own
   pruner stops early trains less than it reserved; the rest is free again at the
   next claim, so pruning's savings fund more trials of the same stage.
5. **end**: the stage is finished when no trial runs and no claim is possible:
   a stage before the last when ``A_k - spent < E`` (the rest goes to the next
   stage through step 2), the last when ``spent == A_k``. A FAILed trial (its
   worker crashed, was killed or stopped) counts nothing; its retry reserves again.

Guarantee: ``spent + reserved <= A_k`` holds after every claim, with any number of
workers, and on resume (all of it is read from storage under the lock). So the
search's budgeted stages train exactly ``B`` epochs in all; each stage before the
last trains ``A_k - E < spent <= A_k``; only the last stage's final trials may be
cut short (as the benchmark's joint searches cut their last trial). Stages without
a share, and plans without a budget, count finished trials as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from optuna.pruners import BasePruner
from optuna.trial import TrialState

from stagetune.storage import TrialAttr, TrialSystemAttr

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from stagetune.spaces import Plan

#: Trial system attribute: the most epochs a claimed trial may train (step 3).
EPOCH_CAP_ATTR = TrialSystemAttr.EPOCH_CAP
#: Trial user attribute of a trial stopped at its cap (step 4).
PRUNE_REASON_ATTR = TrialAttr.PRUNE_REASON

BudgetUnit = Literal["trials", "epochs"]
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def trained_epochs(trial: FrozenTrial) -> int:
    """Epochs a finished trial trained, a pruned trial's partial epochs included.

    Its reported epochs, plus one when a non-finite loss ended it in an epoch it
    did not report (that epoch trained too); none for a trial that an earlier stage
    trained and this one reuses (``Stage.incumbent``).
    """
    if TrialSystemAttr.REUSED in trial.system_attrs:
        return 0
    reported = len(trial.intermediate_values)
    reason = str(trial.user_attrs.get(PRUNE_REASON_ATTR, ""))
    return reported + 1 if "non-finite" in reason else reported


def epoch_targets(plan: Plan, epochs: int) -> dict[str, int]:
    """Step 1: each budgeted stage's cumulative target in epochs, in plan order.

    Example:
        >>> from spaces import core_plan
        >>> epoch_targets(core_plan("mlp", budget=10), epochs=4)
        {'lr': 18, 'weight_decay': 29, 'regularization': 40}
    """
    if plan.budget is None:
        return {}
    total = plan.budget * epochs
    targets = {}
    cumulative = 0.0
    for name, fraction in plan.stage_fractions().items():
        cumulative += fraction
        targets[name] = round(total * cumulative)
    if targets:
        targets[name] = total  # exactly B, whatever the float sum of the fractions
    return targets


@dataclass(frozen=True)
class StageBudget:
    """What one stage may spend, and how its claims are sized.

    Args:
        unit: ``"trials"`` (finished trials) or ``"epochs"`` (trained epochs).
        amount: The stage's budget in that unit (for epochs: the allowance ``A_k``).
        epochs: Epochs per trial (``E``).
        last: The last budgeted stage: its final claims are capped to what is left.
    """

    unit: BudgetUnit
    amount: int
    epochs: int
    last: bool = False

    @classmethod
    def trials(cls, n_trials: int, epochs: int) -> StageBudget:
        return cls("trials", n_trials, epochs)

    def claim(self, trials: Sequence[FrozenTrial]) -> int | None:
        """Step 3: the cap in epochs of a new trial, or ``None`` if the stage has no room.

        Args:
            trials: The stage's trials (any states), read under the search lock.
        """
        finished = [t for t in trials if t.state in _FINISHED]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if self.unit == "trials":
            return self.epochs if len(finished) + len(running) < self.amount else None
        free = self.amount - self.spent(finished) - sum(self._cap(t) for t in running)
        if free >= self.epochs:
            return self.epochs
        if self.last and free >= 1:
            return free
        return None

    def finished(self, trials: Sequence[FrozenTrial]) -> bool:
        """Step 5: no trial runs and no claim is possible."""
        if any(t.state == TrialState.RUNNING for t in trials):
            return False
        return self.claim(trials) is None

    def spent(self, trials: Iterable[FrozenTrial]) -> int:
        """Finished trials (for ``"trials"``) or their trained epochs (``"epochs"``)."""
        finished = [t for t in trials if t.state in _FINISHED]
        if self.unit == "trials":
            return len(finished)
        return sum(trained_epochs(t) for t in finished)

    @property
    def attempt_limit(self) -> int:
        """Trials one worker may run before it gives up on a stage whose trials keep
        failing (every finished trial spends a trial, or at least one epoch but for
        a trial pruned before its first epoch)."""
        return 4 * self.amount + 4

    def _cap(self, trial: FrozenTrial) -> int:
        cap = trial.system_attrs.get(EPOCH_CAP_ATTR)
        return self.epochs if cap is None else int(cap)


def stage_budget(
    plan: Plan, index: int, *, epochs: int, spent_before: Mapping[str, int]
) -> StageBudget:
    """Step 2: stage ``index``'s budget; ``spent_before``: epochs each earlier stage trained.

    Raises:
        ValueError: The stage's allowance is less than one trial (a budget too small
            for these epochs per trial).
    """
    stage = plan.stages[index]
    targets = epoch_targets(plan, epochs)
    if stage.name not in targets:
        return StageBudget.trials(stage.n_trials, epochs)
    earlier = [name for name in targets if name in spent_before]
    allowance = targets[stage.name] - sum(spent_before[name] for name in earlier)
    names = list(targets)
    last = names[-1] == stage.name
    if allowance < (1 if last else epochs):
        raise ValueError(
            f"stage {stage.name!r} has {allowance} of the budget's {targets[names[-1]]} "
            f"epochs left, less than one trial of {epochs}; raise the budget."
        )
    return StageBudget("epochs", allowance, epochs, last=last)


def trial_equivalents(plan: Plan, name: str) -> int | None:
    """A budgeted stage's share of the budget in whole trials (``None``: not budgeted)."""
    fractions = plan.stage_fractions() if plan.budget is not None else {}
    if name not in fractions:
        return None
    assert plan.budget is not None
    return max(1, round(plan.budget * fractions[name]))


class CappedPruner(BasePruner):
    """The stage's pruner, plus step 4: a trial stops once it trained its epoch cap.

    Args:
        inner: The stage's own pruner.
        epochs: Epochs per trial; a cap of ``epochs`` or more never stops a trial.
    """

    def __init__(self, inner: BasePruner, epochs: int) -> None:
        self.inner = inner
        self.epochs = epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        cap = trial.system_attrs.get(EPOCH_CAP_ATTR)
        step = trial.last_step
        if cap is not None and int(cap) < self.epochs and step is not None and step >= int(cap):
            study._storage.set_trial_user_attr(
                trial._trial_id,
                PRUNE_REASON_ATTR,
                f"stage budget: the last {cap} epoch(s) of the stage's share",
            )
            return True
        return bool(self.inner.prune(study, trial))
