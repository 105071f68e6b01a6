from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from stagetune.objectives import StageObjective, Task, TrainConfig, get_task, load_splits, train
from stagetune.spaces import FloatParam


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


class _OutOfMemoryAbove(nn.Module):
    """An MLP whose training forward raises CUDA's out-of-memory error above `limit` rows.

    The error is the real exception type the CUDA caching allocator raises, so
    the objective's handling runs exactly as on a GPU that is too small.
    """

    def __init__(self, limit: int, calls: list[int]) -> None:
        super().__init__()
        self.net = get_task("digits-mlp").build_model({})
        self.limit = limit
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls.append(len(x))
            if len(x) > self.limit:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate {len(x)} rows\nmore details"
                )
        return self.net(x)


def _oom_task(limit: int, calls: list[int]) -> Task:
    digits = get_task("digits-mlp")
    return Task(
        name="digits-oom",
        load=digits.load,
        build_model=lambda params: _OutOfMemoryAbove(limit, calls),
    )


def test_out_of_memory_retries_at_half_the_micro_batch() -> None:
    calls: list[int] = []
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=_oom_task(40, calls),
        searched=(FloatParam("lr", 1e-3, 1e-2, log=True),),
        defaults={"lr": 3e-3, "batch_size": 64},
        epochs=2,
        device=torch.device("cpu"),
    )
    study.enqueue_trial({"lr": 3e-3})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["oom"].startswith(
        "CUDA out of memory at micro-batch 64 (batch 64, accumulation 1): CUDA out of memory."
    )
    assert trial.user_attrs["oom_retry"] == {"micro_batch_size": 32, "accumulation_steps": 2}
    assert calls[0] == 64 and max(calls[1:]) == 32
    assert sorted(trial.intermediate_values) == [1, 2]
    # The retry trains the same model as asking for the accumulation up front.
    direct = train(
        objective.task,
        load_splits(objective.task),
        TrainConfig(lr=3e-3, batch_size=64, accumulation_steps=2),
        epochs=2,
        device=torch.device("cpu"),
        seed=0,
    )
    assert trial.value == pytest.approx(direct.final.val_metric)


def test_out_of_memory_twice_prunes_the_trial_and_the_search_goes_on() -> None:
    calls: list[int] = []
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=_oom_task(16, calls),
        searched=(FloatParam("lr", 1e-3, 1e-2, log=True),),
        defaults={"batch_size": 64},
        epochs=2,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    trial = study.trials[0]
    assert trial.user_attrs["prune_reason"].startswith(
        "CUDA out of memory at micro-batch 32 (batch 64, accumulation 2)"
    )
    assert "oom" in trial.user_attrs
    assert calls == [64, 32, 64, 32]  # each trial: one try, one retry


def test_early_stopping_returns_the_best_epoch_metric() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("lr", 1e-3, 1e-2, log=True),),
        defaults={"lr": 3e-3, "early_stopping_patience": 2},
        epochs=4,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.value == max(trial.intermediate_values.values())
    assert trial.user_attrs["best_epoch"] in trial.intermediate_values


def test_objective_records_curves_and_both_diagnoses() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("lr", 1e-6, 1e-5, log=True),),
        defaults={"batch_size": 64},
        epochs=4,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    attrs = study.trials[0].user_attrs
    assert len(attrs["train_loss_curve"]) == len(attrs["val_loss_curve"]) == 4
    assert attrs["val_metric_curve"][-1] == attrs["val_metric"]
    assert attrs["lr_diagnosis"] == "barely_moves"  # 1e-6 is far too low
    assert attrs["lr_diagnosis_fix"] == "Multiply by 10"
    assert attrs["fit_diagnosis"] == "underfitting"
    assert attrs["initial_loss"] > 2.0  # ten classes, untrained: about ln(10)


def test_nan_trial_is_diagnosed_as_exploding() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(FloatParam("lr", 1e11, 1e12, log=True),),
        epochs=3,
        device=torch.device("cpu"),
    )
    study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs["lr_diagnosis"] == "explodes"


def test_lr_scales_linearly_with_the_batch_when_a_reference_batch_is_set() -> None:
    from stagetune.spaces import CategoricalParam

    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(CategoricalParam("batch_size", (128,)),),
        defaults={"lr": 1e-3, "batch_size": 32},
        epochs=1,
        device=torch.device("cpu"),
        lr_reference_batch=32,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.params == {"batch_size": 128}
    assert trial.user_attrs["config"]["lr"] == pytest.approx(4e-3)  # 4x batch -> 4x lr


def test_a_batch_past_the_scaling_limit_warns() -> None:
    from stagetune.objectives._objective import scale_for_batch

    with pytest.warns(UserWarning, match="past the linear scaling rule's limit"):
        params = scale_for_batch({"lr": 0.1, "batch_size": 8192}, 256)
    assert params["lr"] == pytest.approx(3.2)
    assert scale_for_batch({"lr": 0.1, "batch_size": 8192}, None)["lr"] == 0.1
