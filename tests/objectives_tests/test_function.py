"""A train function as a trial: the guide's pieces, report/prune, curves, range test."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
import torch

from stagetune.objectives import (
    FunctionObjective,
    FunctionRangeTestObjective,
    LoopTools,
    RangeTestLoop,
    TaskError,
    TrainFunction,
)
from stagetune.objectives._function import NO_RANGE_TEST, REPORTS_ATTR, skip_range_test
from stagetune.spaces import FloatParam, RangeTestSpec, default_plan

LR = FloatParam("lr", 1e-4, 1e-1, log=True)


def study(direction: str = "minimize", pruner: Any = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction=direction, pruner=pruner or optuna.pruners.NopPruner())


# -- the guide's pieces ----------------------------------------------------------------


def test_optimizer_is_adamw_with_decay_and_no_decay_groups() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    optimizer = LoopTools({"lr": 0.01, "weight_decay": 0.05}).optimizer(model)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decay["params"]] == [(8, 4)]
    assert len(no_decay["params"]) == 3  # the bias and the LayerNorm's weight and bias


def test_schedule_warms_up_then_decays() -> None:
    tools = LoopTools({"lr": 0.1, "scheduler": "cosine_warmup", "warmup_fraction": 0.2})
    model = torch.nn.Linear(2, 1)
    optimizer = tools.optimizer(model)
    schedule = tools.scheduler(optimizer, 10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] < lrs[1] == pytest.approx(0.1)  # 2 warmup steps up to the peak
    assert lrs[2:] == sorted(lrs[2:], reverse=True) and lrs[-1] < 0.01


def test_plateau_schedule_steps_per_epoch_on_the_validation_loss() -> None:
    tools = LoopTools({"lr": 0.1, "scheduler": "plateau", "plateau_patience": 0})
    optimizer = tools.optimizer(torch.nn.Linear(2, 1))
    schedule = tools.scheduler(optimizer, 100)
    schedule.step()  # per optimizer step: nothing for a plateau schedule
    schedule.end_epoch(1.0)
    schedule.end_epoch(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="end_epoch\\(val_loss\\)"):
        schedule.end_epoch()


def test_clip_bounds_the_global_gradient_norm() -> None:
    model = torch.nn.Linear(3, 1)
    model(torch.full((4, 3), 100.0)).sum().backward()
    assert LoopTools({"grad_clip": 0.0}).clip(model) is None  # 0 means no clipping
    norm = LoopTools({"grad_clip": 1.0}).clip(model)
    assert norm is not None and norm > 1.0
    after = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
    assert float(after) == pytest.approx(1.0, rel=1e-4)


def test_micro_batches_of_a_dict_batch_give_the_whole_batch_gradient() -> None:
    torch.manual_seed(0)
    batch = {"x": torch.randn(10, 3), "y": torch.randn(10, 1), "tag": "kept"}
    model = torch.nn.Linear(3, 1)

    def loss(part: dict[str, Any]) -> torch.Tensor:
        assert part["tag"] == "kept"
        return torch.nn.functional.mse_loss(model(part["x"]), part["y"])

    loss(batch).backward()
    whole = model.weight.grad.clone()  # type: ignore[union-attr]
    model.zero_grad()
    tools = LoopTools({"batch_size": 10, "accumulation_steps": 3})
    parts = list(tools.micro_batches(batch))
    assert [len(p["x"]) for p, _ in parts] == [4, 4, 2]
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    for part, weight in parts:
        (loss(part) * weight).backward()
    assert torch.allclose(model.weight.grad, whole, atol=1e-6)  # type: ignore[arg-type]


# -- one trial -------------------------------------------------------------------------


def curve_fn(losses: list[float], *, ret: Any = "last") -> Any:
    def fit(params: dict[str, Any], ctx: Any) -> Any:
        ctx.report(0, losses[0], val_loss=losses[0])
        for epoch, value in enumerate(losses[1:], start=1):
            ctx.report(epoch, value, train_loss=value * 0.9, val_loss=value)
        return losses[-1] if ret == "last" else ret

    return fit


def objective(fn: Any, **kwargs: Any) -> FunctionObjective:
    return FunctionObjective(
        TrainFunction(fn, name="f", **kwargs.pop("function", {})),
        searched=(LR,),
        defaults={"lr": 1e-3},
        epochs=4,
        device=torch.device("cpu"),
        **kwargs,
    )


def test_a_trial_records_curves_and_diagnoses_like_a_task() -> None:
    s = study()
    s.optimize(objective(curve_fn([2.0, 1.0, 0.6, 0.5, 0.45])), n_trials=1)
    trial = s.trials[0]
    assert trial.value == 0.45
    assert trial.intermediate_values == {1: 1.0, 2: 0.6, 3: 0.5, 4: 0.45}
    attrs = trial.user_attrs
    assert attrs["initial_loss"] == 2.0
    assert attrs["val_loss_curve"] == [1.0, 0.6, 0.5, 0.45]
    assert attrs["train_loss_curve"] == pytest.approx([0.9, 0.54, 0.45, 0.405])
    assert attrs["epochs_run"] == 4
    assert attrs["lr_diagnosis"] in ("healthy", "plateaus_early")
    assert attrs["fit_diagnosis"] in ("overfitting", "underfitting", "good_fit")
    assert len(attrs[REPORTS_ATTR]) == 4
    assert "lr" in attrs["config"]


def test_returning_none_takes_the_last_reported_metric() -> None:
    s = study()
    s.optimize(objective(curve_fn([2.0, 1.0, 0.7], ret=None)), n_trials=1)
    assert s.trials[0].value == 0.7


def test_only_a_metric_reported_records_no_loss_diagnosis() -> None:
    def fit(params: dict[str, Any], ctx: Any) -> float:
        ctx.report(1, 0.5)
        return 0.5

    s = study()
    s.optimize(objective(fit), n_trials=1)
    attrs = s.trials[0].user_attrs
    assert attrs["val_metric_curve"] == [0.5]
    assert "lr_diagnosis" not in attrs and "fit_diagnosis" not in attrs


def test_the_pruner_stops_the_trial_through_report() -> None:
    after: list[int] = []

    def fit(params: dict[str, Any], ctx: Any) -> float:
        for epoch in range(1, ctx.epochs + 1):
            ctx.report(epoch, 10.0 * epoch, train_loss=1.0, val_loss=1.0)
            after.append(epoch)
        return 40.0

    s = study(pruner=optuna.pruners.ThresholdPruner(upper=15.0))
    s.optimize(objective(fit), n_trials=1)
    trial = s.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_at_epoch"] == 2 and after == [1]
    assert trial.user_attrs["val_metric_curve"] == [10.0, 20.0]


def test_a_non_finite_report_prunes_with_the_reason() -> None:
    s = study()
    s.optimize(objective(curve_fn([2.0, 1.0, math.nan])), n_trials=1)
    trial = s.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "non-finite value reported at epoch 2" in trial.user_attrs["prune_reason"]
    assert trial.user_attrs["lr_diagnosis"] == "explodes"


def test_a_final_run_stops_early_and_keeps_the_best_epoch() -> None:
    s = study()
    fn = curve_fn([3.0, 1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    s.optimize(objective(fn, final=True, early_stopping_patience=2), n_trials=1)
    trial = s.trials[0]
    assert trial.value == 0.5
    assert trial.user_attrs["best_epoch"] == 2 and trial.user_attrs["stopped_early"] is True
    assert trial.user_attrs["epochs_run"] == 4


def test_reports_are_checked() -> None:
    def fit(params: dict[str, Any], ctx: Any) -> float:
        ctx.report(2, 0.5)
        ctx.report(2, 0.4)
        return 0.4

    s = study()
    with pytest.raises(ValueError, match="increasing order, but got 2 after 2"):
        s.optimize(objective(fit), n_trials=1)
    with pytest.raises(TaskError, match="returned None and reported no epoch"):
        study().optimize(objective(lambda p, c: None), n_trials=1)


def test_a_train_function_is_validated_when_built() -> None:
    with pytest.raises(TaskError, match="needs a name"):
        TrainFunction(lambda p, c: 0.0)
    with pytest.raises(TaskError, match="direction must be 'maximize' or 'minimize'"):
        TrainFunction(curve_fn([1.0]), name="f", direction="up")  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="missing \\['batches', 'loss'\\]"):
        RangeTestLoop(model=lambda p: torch.nn.Linear(1, 1))


# -- the plan and the range test -------------------------------------------------------


def test_a_plan_without_a_range_test_loop_skips_stage_0_and_says_so() -> None:
    plan = default_plan("mlp")
    assert plan.stages[0].kind == "lr_range_test"
    skipped = TrainFunction(curve_fn([1.0]), name="f").adapt_plan(plan)
    assert [s.name for s in skipped.stages] == [s.name for s in plan.stages[1:]]
    assert skipped.stages[0].why.endswith(NO_RANGE_TEST)
    assert skip_range_test(skipped, "x") is skipped
    loop = RangeTestLoop(step=lambda p, t: lambda lr: 1.0)
    assert TrainFunction(curve_fn([1.0]), name="f", range_test=loop).adapt_plan(plan) is plan


def regression() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def model_loop() -> RangeTestLoop:
    x, y = regression()

    def batches(params: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        return [{"x": x[i : i + 32], "y": y[i : i + 32]} for i in range(0, 512, 32)]

    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])

    return RangeTestLoop(model=lambda params: torch.nn.Linear(4, 1), batches=batches, loss=loss)


def step_loop() -> RangeTestLoop:
    x, y = regression()

    def step(params: dict[str, Any], tools: LoopTools) -> Any:
        model = torch.nn.Linear(4, 1)
        optimizer = tools.optimizer(model)
        index = iter(range(10**6))

        def one_step(lr: float) -> float:
            for group in optimizer.param_groups:
                group["lr"] = lr
            i = next(index) % 16 * 32
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[i : i + 32]), y[i : i + 32])
            loss.backward()
            optimizer.step()
            return loss.item()

        return one_step

    return RangeTestLoop(step=step)


@pytest.mark.parametrize("loop", [model_loop, step_loop], ids=["model-batches-loss", "step"])
def test_the_range_test_drives_an_own_loop(loop: Any) -> None:
    spec = RangeTestSpec(start_lr=1e-5, end_lr=10.0, num_iter=60)
    function = TrainFunction(curve_fn([1.0]), name="f", range_test=loop())
    s = study()
    s.optimize(
        FunctionRangeTestObjective.of(
            function,
            clip=LR,
            spec=spec,
            carried=(),
            defaults={"lr": 1e-3, "batch_size": 32},
            device=torch.device("cpu"),
            seed=0,
        ),
        n_trials=1,
    )
    trial = s.trials[0]
    test = trial.user_attrs["lr_range_test"]
    assert len(test["lrs"]) == 60 or test["stop_reason"] != "end"
    assert test["lrs"][0] == pytest.approx(1e-5)
    assert min(test["losses"]) < 0.8 * test["losses"][0]  # the sweep trained the model
    assert LR.low <= trial.params["lr"] <= LR.high
    assert trial.params["lr"] == pytest.approx(test["suggestion"]) or test["clipped"]
