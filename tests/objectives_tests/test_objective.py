from __future__ import annotations

import optuna
import torch
from optuna.trial import TrialState

from objectives import StageObjective, get_task
from spaces import FloatParam


def test_objective_reports_every_epoch_and_records_the_last() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("lr", 1e-3, 1e-2, log=True),),
        defaults={"lr": 1e-3, "batch_size": 64},
        epochs=3,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [1, 2, 3]
    assert trial.value == trial.intermediate_values[3]
    assert trial.user_attrs["epochs_run"] == 3
    assert trial.user_attrs["config"]["lr"] == trial.params["lr"]


def test_objective_prunes_when_the_pruner_says_so() -> None:
    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("dropout", 0.0, 0.5),),
        epochs=5,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["pruned_at_epoch"] == 1
    assert list(trial.intermediate_values) == [1]


def test_nan_loss_prunes_the_trial_with_its_reason() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("lr", 1e11, 1e12, log=True),),
        epochs=3,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert "non-finite training loss" in trial.user_attrs["prune_reason"]
