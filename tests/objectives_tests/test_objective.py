from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from objectives import StageObjective, Task, TrainConfig, get_task, load_splits, train
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
