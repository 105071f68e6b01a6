"""Step 5, the full run: every tuned value, the full epoch count, early stopping."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stagetune.objectives._config import TrainConfig
from stagetune.objectives._diagnosis import initial_loss
from stagetune.objectives._model_file import ModelFile, upload_model
from stagetune.objectives._objective import (
    StageObjective,
    TrialClock,
    discard_when_finished,
    record_curves,
    replay,
)
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
    from optuna.artifacts._protocol import ArtifactStore
    from torch import nn


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
    artifacts: ArtifactStore | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna
        import torch

        params = self.params_for(trial)
        config = TrainConfig.from_params(params)
        trial.set_user_attr(TrialAttr.CONFIG, dict(sorted(params.items())))
        splits = load_splits(self.task)
        device = self.device or default_device()
        trial.set_user_attr(TrialAttr.DEVICE, str(device))
        seed = self.trial_seed(trial)
        start = initial_loss(self.task, splits, config, device=device, seed=seed)

        models: list[nn.Module] = []

        def build(model_params: Any) -> nn.Module:
            model = self.task.build_model(model_params)
            models.append(model)
            return model

        history: list[EpochStats] = []
        reported: set[int] = set()
        clock = TrialClock(self.time_limit)

        def on_resume(restored: list[EpochStats]) -> None:
            replay(trial, restored, history, reported)
            clock.restored(restored)

        def on_epoch(stats: EpochStats) -> None:
            if not (math.isfinite(stats.val_loss) and math.isfinite(stats.val_metric)):
                raise NonFiniteLossError(stats.epoch, -1, stats.val_loss)
            history.append(stats)
            reported.add(stats.epoch)
            trial.report(stats.val_metric, stats.epoch)
            clock.check(trial, stats.epoch)

        # Early stopping and the best epoch's weights are kept by `train`, so that a
        # checkpoint holds them and a resumed run stops where an uninterrupted one would.
        config = replace(config, early_stopping_patience=self.early_stopping_patience)
        checkpoint = self.checkpoints.for_trial(trial) if self.checkpoints else None
        result = None
        diverged = False
        try:
            with discard_when_finished(checkpoint):
                result = train(
                    replace(self.task, build_model=build),
                    splits,
                    config,
                    epochs=self.epochs,
                    device=device,
                    seed=seed,
                    on_epoch=on_epoch,
                    checkpoint=checkpoint,
                    on_resume=on_resume,
                    keep_best=True,
                )
        except NonFiniteLossError as error:
            diverged = True
            trial.set_user_attr(TrialAttr.FINAL_ERROR, str(error))
        finally:
            record_curves(trial, history, initial=start, diverged=diverged)
        best_epoch, best_value = _best(history, self.task.better)
        if best_epoch == 0:
            cause = trial.user_attrs.get(TrialAttr.FINAL_ERROR)
            reason = f"the final run has no finished epoch ({cause})"
            trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr(TrialAttr.BEST_EPOCH, best_epoch)
        stopped_early = bool(result is not None and result.stopped_early)
        trial.set_user_attr(TrialAttr.STOPPED_EARLY, stopped_early)
        model = models[-1]
        if result is not None and result.best_state is not None:
            with torch.no_grad():
                model.load_state_dict(result.best_state)
        if splits.test is not None:
            test_loss, test_metric = evaluate(model, self.task, splits.test, device=device)
            trial.set_user_attr(TrialAttr.TEST_LOSS, test_loss)
            trial.set_user_attr(TrialAttr.TEST_METRIC, test_metric)
        if self.artifacts is not None:
            model_file = ModelFile(
                task=self.task.name,
                config=dict(sorted(params.items())),
                state_dict=model.state_dict(),
                best_epoch=best_epoch,
                val_metric=best_value,
                test_metric=trial.user_attrs.get(TrialAttr.TEST_METRIC),
            )
            artifact_id = upload_model(self.artifacts, trial, model_file)
            trial.set_user_attr(TrialAttr.MODEL_ARTIFACT, artifact_id)
        return float(best_value)


def _best(history: list[EpochStats], better: Any) -> tuple[int, float]:
    """The best epoch (the first of ties) and its metric; ``(0, nan)`` with no epoch."""
    best_epoch, best_value = 0, math.nan
    for stats in history:
        if best_epoch == 0 or better(stats.val_metric, best_value):
            best_epoch, best_value = stats.epoch, stats.val_metric
    return best_epoch, best_value
