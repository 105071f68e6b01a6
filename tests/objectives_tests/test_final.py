"""Step 5: the full run with early stopping, the best epoch restored, the test split scored."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState

from stagetune.objectives import FinalObjective, get_task
from stagetune.objectives._tasks import load_splits
from stagetune.objectives._train import evaluate

CPU = torch.device("cpu")


def run_final(**options: object) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize")
    objective = FinalObjective(  # type: ignore[misc]
        task=get_task("digits-mlp"), searched=(), device=CPU, **options
    )
    study.optimize(objective, n_trials=1)
    return study.trials[0]


def test_final_run_scores_validation_and_test_and_records_curves() -> None:
    trial = run_final(defaults={"lr": 1e-2, "dropout": 0.1}, epochs=6, early_stopping_patience=10)
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    assert attrs["epochs_run"] == 6 and attrs["stopped_early"] is False
    assert trial.value == max(attrs["val_metric_curve"])
    assert attrs["best_epoch"] == attrs["val_metric_curve"].index(trial.value) + 1
    assert 0.85 < attrs["test_metric"] <= 1.0
    assert attrs["lr_diagnosis"] in ("healthy", "plateaus_early", "oscillates")
    assert len(attrs["train_loss_curve"]) == 6


def test_early_stopping_stops_after_patience_epochs_without_a_better_metric() -> None:
    # Constant LR far too high: the metric stops improving early; patience 2 ends the run.
    trial = run_final(
        defaults={"lr": 0.3, "scheduler": "constant"}, epochs=30, early_stopping_patience=2
    )
    attrs = trial.user_attrs
    assert attrs["stopped_early"] is True
    assert attrs["epochs_run"] == attrs["best_epoch"] + 2
    assert attrs["epochs_run"] < 30
    assert attrs["lr_diagnosis"] == "explodes"


def test_the_test_metric_is_the_best_epochs_model() -> None:
    """Restoring the best epoch's weights: its test score equals a re-run stopped there."""
    trial = run_final(
        defaults={"lr": 3e-2, "scheduler": "constant"}, epochs=8, early_stopping_patience=3, seed=5
    )
    best_epoch = trial.user_attrs["best_epoch"]
    task = get_task("digits-mlp")
    from stagetune.objectives import TrainConfig, train

    models: list[torch.nn.Module] = []

    def build(params: object) -> torch.nn.Module:
        models.append(task.build_model(params))  # type: ignore[arg-type]
        return models[-1]

    from dataclasses import replace

    train(
        replace(task, build_model=build),
        load_splits(task),
        TrainConfig(lr=3e-2, scheduler="constant"),
        epochs=best_epoch,
        device=CPU,
        seed=5,
    )
    _, metric = evaluate(models[-1], task, load_splits(task).test)
    # Same seed, same constant LR: the first `best_epoch` epochs are the same run.
    assert trial.user_attrs["test_metric"] == pytest.approx(metric)
