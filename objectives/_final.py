"""Step 5, the full run: every tuned value, the full epoch count, early stopping."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stagetune.objectives._config import TrainConfig
from stagetune.objectives._diagnosis import initial_loss
from stagetune.objectives._objective import StageObjective, record_curves
from stagetune.objectives._tasks import load_splits
from stagetune.objectives._train import (
    EpochStats,
    NonFiniteLossError,
    default_device,
    evaluate,
    train,
)
from stagetune.storage import TrialAttr

if TYPE_CHECKING:
    import optuna
    from torch import nn


class _EarlyStop(Exception):
    """Raised from the epoch callback when the patience ran out."""


@dataclass
class FinalObjective(StageObjective):
    """One full run with the tuned values: early stopping on the validation metric,
    the best epoch's weights restored, then the test split scored once.

    Args (besides :class:`StageObjective`'s):
        early_stopping_patience: Epochs without a better validation metric before the
            run stops (the guide: "early stopping with patience=10-20"); ``None``: never.

    The trial's value is the best epoch's validation metric; its user attributes add
    ``best_epoch``, ``stopped_early``, and ``test_loss`` and ``test_metric`` when the
    task has a test split.
    """

    early_stopping_patience: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        import torch

        params = self.params_for(trial)
        config = TrainConfig.from_params(params)
        trial.set_user_attr(TrialAttr.CONFIG, dict(sorted(params.items())))
        splits = load_splits(self.task)
        device = self.device or default_device()
        seed = self.seed + trial.number
        start = initial_loss(self.task, splits, config, device=device, seed=seed)
        maximize = self.task.direction == "maximize"

        models: list[nn.Module] = []

        def build(model_params: Any) -> nn.Module:
            model = self.task.build_model(model_params)
            models.append(model)
            return model

        history: list[EpochStats] = []
        best: dict[str, Any] = {}

        def on_epoch(stats: EpochStats) -> None:
            if not (math.isfinite(stats.val_loss) and math.isfinite(stats.val_metric)):
                raise NonFiniteLossError(stats.epoch, -1, stats.val_loss)
            history.append(stats)
            trial.report(stats.val_metric, stats.epoch)
            better = not best or (
                stats.val_metric > best["value"] if maximize else stats.val_metric < best["value"]
            )
            if better:
                weights = models[-1].state_dict().items()
                state = {k: v.detach().to("cpu", copy=True) for k, v in weights}
                best.update(value=stats.val_metric, epoch=stats.epoch, state=state)
            patience = self.early_stopping_patience
            if patience is not None and stats.epoch - best["epoch"] >= patience:
                raise _EarlyStop

        stopped_early = False
        diverged = False
        try:
            train(
                replace(self.task, build_model=build),
                splits,
                config,
                epochs=self.epochs,
                device=device,
                seed=seed,
                on_epoch=on_epoch,
            )
        except _EarlyStop:
            stopped_early = True
        except NonFiniteLossError as error:
            diverged = True
            trial.set_user_attr(TrialAttr.FINAL_ERROR, str(error))
        finally:
            record_curves(trial, history, initial=start, diverged=diverged)
        if not best:
            import optuna

            cause = trial.user_attrs.get(TrialAttr.FINAL_ERROR)
            reason = f"the final run has no finished epoch ({cause})"
            trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr(TrialAttr.BEST_EPOCH, best["epoch"])
        trial.set_user_attr(TrialAttr.STOPPED_EARLY, stopped_early)
        model = models[-1]
        with torch.no_grad():
            model.load_state_dict(best["state"])
        if splits.test is not None:
            test_loss, test_metric = evaluate(model, self.task, splits.test, device=device)
            trial.set_user_attr(TrialAttr.TEST_LOSS, test_loss)
            trial.set_user_attr(TrialAttr.TEST_METRIC, test_metric)
        return float(best["value"])
