"""The LR range test: torch-lr-finder's sweep and smoothing, its stops, its suggestion."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from stagetune.objectives import (
    RangeTestObjective,
    RangeTestResult,
    TrainConfig,
    get_task,
    run_range_test,
)
from stagetune.objectives._range_test import smooth, stop_reason
from stagetune.objectives._tasks import load_splits
from stagetune.spaces import FloatParam, RangeTestSpec
from stagetune.spaces._guide import LEARNING_RATE

CPU = torch.device("cpu")


def test_smoothing_is_torch_lr_finders() -> None:
    assert smooth([1.0, 2.0, 2.0], 0.05) == pytest.approx([1.0, 1.05, 1.0975])
    assert smooth([1.0, 2.0], 0.0) == [1.0, 2.0]


def test_stops_on_divergence_at_diverge_th_times_the_minimum() -> None:
    spec = RangeTestSpec(diverge_th=5.0, plateau_patience=0)
    assert stop_reason([2.0, 1.0, 4.9], spec) is None
    assert stop_reason([2.0, 1.0, 5.1], spec) == "diverged"
    assert stop_reason([2.0, math.nan], spec) == "non_finite"


def test_stops_on_a_plateau_only_after_the_loss_fell() -> None:
    spec = RangeTestSpec(plateau_patience=5, plateau_drop=0.2)
    flat_start = [2.3] * 30  # tiny LRs: no fall yet, the sweep goes on
    assert stop_reason(flat_start, spec) is None
    fell = [2.3, 2.0, 1.5, 1.0] + [1.1] * 4
    assert stop_reason(fell, spec) is None
    assert stop_reason([*fell, 1.1], spec) == "plateau"  # 5 batches without a new minimum
    assert stop_reason([2.3] * 100, spec) == "end"


def test_candidate_rules_on_a_known_curve() -> None:
    lrs = [10 ** (-7 + 8 * i / 99) for i in range(100)]
    # flat, then a steep fall between batches 40 and 60, minimum at 70, then up
    losses = [2.0 if i < 40 else 2.0 - 0.05 * (i - 40) if i < 60 else 1.0 for i in range(100)]
    losses[70] = 0.9
    result = RangeTestResult(lrs=lrs, losses=losses, raw_losses=losses, stop_reason="end")
    assert result.min_loss_lr() == lrs[70]
    assert lrs[40] <= result.steepest_lr() <= lrs[60]
    assert result.suggestion("min_loss", 10.0) == pytest.approx(lrs[70] / 10)


def test_on_digits_the_sweep_runs_on_the_training_data_and_stops() -> None:
    task = get_task("digits-mlp")
    result = run_range_test(
        task, load_splits(task), TrainConfig(dropout=0.3), RangeTestSpec(), device=CPU, seed=0
    )
    assert 50 < len(result.lrs) <= 100
    assert result.lrs[0] == 1e-7
    assert result.lrs == RangeTestSpec().lrs()[: len(result.lrs)]
    assert result.stop_reason in ("diverged", "plateau", "end")
    assert min(result.losses) < result.losses[0] * 0.9  # the loss fell before it stopped
    assert all(math.isfinite(v) for v in result.losses)
    # the sweep smooths with the rule tested above, step by step
    assert result.losses == pytest.approx(smooth(result.raw_losses, RangeTestSpec().smooth_f))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_digits_the_suggestion_lies_inside_the_guides_adamw_range(seed: int) -> None:
    task = get_task("digits-mlp")
    spec = RangeTestSpec()
    result = run_range_test(
        task, load_splits(task), TrainConfig(dropout=0.3), spec, device=CPU, seed=seed
    )
    row = LEARNING_RATE["adamw_scratch"]
    suggestion = result.suggestion(spec.rule, spec.divisor)
    assert row.search_low <= suggestion <= row.search_high


def test_the_objective_records_curve_window_and_lr() -> None:
    row = LEARNING_RATE["adamw_scratch"]
    clip = FloatParam("lr", row.search_low, row.search_high, log=True)
    study = optuna.create_study(direction="minimize")
    objective = RangeTestObjective(
        task=get_task("digits-mlp"),
        clip=clip,
        spec=RangeTestSpec(),
        defaults={"dropout": 0.3},
        device=CPU,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    curve = trial.user_attrs["lr_range_test"]
    assert len(curve["lrs"]) == len(curve["losses"]) == len(curve["raw_losses"])
    assert curve["suggestion"] == pytest.approx(curve["min_loss_lr"] / 10)
    low, high = curve["window"]
    assert low <= trial.params["lr"] <= high
    assert clip.low <= low < high <= clip.high
    assert trial.value == min(curve["losses"])
