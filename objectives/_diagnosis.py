"""Reading loss curves: the guide's "Signs you have the wrong LR", and over/underfitting.

Both work on per-epoch curves (what every trial records) and are scale-free:
they compare losses by ratio, so that they hold for any loss and task. The
thresholds are stagetune's, not the guide's (the guide names the symptoms, not
numbers); they were set on the curves of digits-mlp and a 1-D CNN on mnist1d at
LRs from 1e-5 to 0.3 (README, "Diagnoses") and each class is tested on
synthetic curves in tests/objectives_tests/test_diagnosis.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stagetune.spaces import LR_SYMPTOMS
from stagetune.storage import TrialAttr

if TYPE_CHECKING:
    import torch

    from stagetune.objectives._config import TrainConfig
    from stagetune.objectives._tasks import Splits, Task

LrLabel = Literal["explodes", "barely_moves", "plateaus_early", "oscillates", "healthy"]
LR_LABELS: tuple[str, ...] = (
    "explodes",
    "barely_moves",
    "plateaus_early",
    "oscillates",
    "healthy",
)
FitLabel = Literal["overfitting", "underfitting", "good_fit"]
FIT_LABELS: tuple[str, ...] = ("overfitting", "underfitting", "good_fit")

#: Explodes: some epoch's training loss rose above the initial loss by this factor.
EXPLODE_FACTOR = 1.1
#: Barely moves: the best training loss is above this fraction of the initial loss.
BARELY_MOVES_FRACTION = 0.7
#: Plateaus early: the second half of training made less than this share of the
#: whole decrease (on a log scale).
PLATEAU_LATE_SHARE = 0.05
#: Oscillates: at least this share of epochs ends with a loss higher than the one
#: before (by more than ``RISE``), while the second half still trends down.
OSCILLATION_SHARE = 0.25
RISE = 0.02
#: The "fix" of a healthy curve (the guide's table lists only symptoms).
HEALTHY_FIX = "Keep the LR"
#: Curves shorter than this many epochs are judged only for exploding or not moving.
MIN_EPOCHS_FOR_SHAPE = 4

#: Overfitting: at the end, the validation loss is above its minimum by this share of
#: the initial loss (``VAL_RISE``), or above the training loss by this share
#: (``OVERFIT_GAP``). Shares of the initial loss, not ratios: near zero loss a ratio
#: calls a tiny, harmless gap overfitting (on digits-mlp a validation loss 2x the
#: training loss was 1% of the initial loss, and less dropout scored better).
#: Underfitting: validation loss at most ``UNDERFIT_GAP`` times the training loss
#: (no generalization gap).
VAL_RISE = 0.02
OVERFIT_GAP = 0.05
UNDERFIT_GAP = 1.1


@dataclass(frozen=True)
class LrDiagnosis:
    """One curve's row of "Signs you have the wrong LR".

    Attributes:
        label: ``"explodes"``, ``"barely_moves"``, ``"plateaus_early"``,
            ``"oscillates"`` or ``"healthy"``.
        symptom, diagnosis, fix: The guide's words (for ``healthy``, not a row of the
            guide's table: "Keep the LR").
        reason: The numbers that decided it.
    """

    label: LrLabel
    symptom: str
    diagnosis: str
    fix: str
    reason: str

    def to_attrs(self) -> dict[str, str]:
        return {
            TrialAttr.LR_DIAGNOSIS: self.label,
            TrialAttr.LR_DIAGNOSIS_FIX: self.fix,
            TrialAttr.LR_DIAGNOSIS_REASON: self.reason,
        }


@dataclass(frozen=True)
class FitDiagnosis:
    """Over- or underfitting, read from train and validation loss curves.

    Attributes:
        label: ``"overfitting"``, ``"underfitting"`` or ``"good_fit"``.
        direction: ``+1``: regularize more; ``-1``: less; ``0``: search both ways
            (the guide's step 4: "If overfitting -> increase dropout/weight decay.
            If underfitting -> decrease both.").
        reason: The numbers that decided it.
    """

    label: FitLabel
    direction: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "direction": self.direction, "reason": self.reason}


def _lr(label: LrLabel, reason: str) -> LrDiagnosis:
    row = LR_SYMPTOMS.get(label)
    if row is None:  # healthy: not a row of the guide's table
        return LrDiagnosis(label, "Loss decreases steadily", "LR fits", HEALTHY_FIX, reason)
    return LrDiagnosis(label, row.symptom, row.diagnosis, row.fix, reason)


def diagnose_lr(
    train_loss: Sequence[float], *, initial_loss: float | None = None, diverged: bool = False
) -> LrDiagnosis:
    """Classify a training-loss curve by the guide's "Signs you have the wrong LR".

    Args:
        train_loss: Mean training loss of each epoch, in order.
        initial_loss: Loss of the untrained model (e.g. on the validation data); the
            first epoch's loss when not given.
        diverged: The run stopped on a NaN or infinite loss.

    Returns:
        The first class that fits, in the order explodes, barely moves, plateaus
        early, oscillates; else healthy.

    Example:
        >>> diagnose_lr([2.3, 2.29, 2.29, 2.28], initial_loss=2.3).label
        'barely_moves'
    """
    curve = [float(v) for v in train_loss]
    if diverged or not all(math.isfinite(v) for v in curve):
        return _lr("explodes", "the loss became NaN or infinite")
    if not curve:
        return _lr("healthy", "no epoch finished: nothing to judge")
    start = initial_loss if initial_loss is not None and initial_loss > 0 else curve[0]
    worst = max(curve)
    if worst > EXPLODE_FACTOR * start:
        return _lr("explodes", f"epoch loss {worst:.4g} rose above the initial loss {start:.4g}")
    best = min(curve)
    if best > BARELY_MOVES_FRACTION * start:
        return _lr(
            "barely_moves",
            f"best loss {best:.4g} is {best / start:.0%} of the initial {start:.4g}",
        )
    if len(curve) < MIN_EPOCHS_FOR_SHAPE:
        return _lr("healthy", f"decreasing; {len(curve)} epochs too few to judge its shape")
    if min(curve) <= 0:
        return _lr("healthy", "the loss reached 0")
    logs = [math.log(v) for v in curve]
    total = math.log(start) - min(logs)
    middle = len(curve) // 2
    late = logs[middle] - logs[-1]
    if late < PLATEAU_LATE_SHARE * total:
        return _lr(
            "plateaus_early",
            f"the second half made {max(late, 0.0) / total:.0%} of the decrease "
            f"(log scale; < {PLATEAU_LATE_SHARE:.0%})",
        )
    rises = sum(b > a * (1 + RISE) for a, b in itertools.pairwise(curve))
    if rises >= OSCILLATION_SHARE * (len(curve) - 1):
        return _lr(
            "oscillates",
            f"the loss rose in {rises} of {len(curve) - 1} epochs while trending down",
        )
    return _lr("healthy", f"the second half made {late / total:.0%} of the decrease")


def diagnose_fit(
    train_loss: Sequence[float], val_loss: Sequence[float], *, initial_loss: float | None = None
) -> FitDiagnosis:
    """Over- or underfitting from the curves of one run (the guide's step 4).

    Args:
        train_loss: Mean training loss of each epoch.
        val_loss: Validation loss after each epoch.
        initial_loss: Loss of the untrained model, the scale of the gaps; the first
            epoch's validation loss when not given.

    Returns:
        Overfitting when the validation loss ends ``VAL_RISE`` (a share of the
        initial loss) above its minimum, or ``OVERFIT_GAP`` above the training loss;
        underfitting when it is at most ``UNDERFIT_GAP`` times the training loss;
        else a good fit.

    Example:
        >>> diagnose_fit([1.0, 0.5, 0.2, 0.1], [1.0, 0.6, 0.5, 0.6]).label
        'overfitting'
    """
    train = [float(v) for v in train_loss]
    val = [float(v) for v in val_loss]
    if not train or not val or not all(math.isfinite(v) for v in (*train, *val)):
        return FitDiagnosis("good_fit", 0, "no finite curves: no direction")
    scale = initial_loss if initial_loss is not None and initial_loss > 0 else val[0]
    last_train, last_val, best_val = train[-1], val[-1], min(val)
    if last_val - best_val >= VAL_RISE * scale:
        return FitDiagnosis(
            "overfitting",
            +1,
            f"validation loss rose from its minimum {best_val:.4g} to {last_val:.4g}",
        )
    if last_val - last_train >= OVERFIT_GAP * scale:
        return FitDiagnosis(
            "overfitting",
            +1,
            f"validation loss {last_val:.4g} is above the training loss {last_train:.4g} by "
            f"{(last_val - last_train) / scale:.0%} of the initial loss",
        )
    if last_train <= 0:
        return FitDiagnosis("good_fit", 0, "training and validation loss are both about 0")
    gap = last_val / last_train
    if gap <= UNDERFIT_GAP:
        return FitDiagnosis(
            "underfitting",
            -1,
            f"validation loss is {gap:.2f}x the training loss: no generalization gap",
        )
    return FitDiagnosis("good_fit", 0, f"validation loss is {gap:.2f}x the training loss")


def summarize_lr_diagnoses(labels: Sequence[str]) -> dict[str, int]:
    """Count of each class among ``labels`` (all classes present, zeros included)."""
    return {label: sum(1 for x in labels if x == label) for label in LR_LABELS}


def initial_loss(
    task: Task, splits: Splits, config: TrainConfig, *, device: torch.device, seed: int
) -> float | None:
    """Validation loss of the untrained model that ``train(..., seed=seed)`` starts from.

    The reference "explodes" and "barely moves" are judged against. Costs one model
    build and one pass over the validation data; ``None`` when it cannot be measured.
    """
    import torch

    from stagetune.objectives._train import evaluate

    torch.manual_seed(seed)  # train() seeds the same way before it builds its model
    try:
        model = task.build_model(config.model_params).to(device)
        loss, _ = evaluate(model, task, splits.val, device=device)
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return None
    return loss if math.isfinite(loss) else None
