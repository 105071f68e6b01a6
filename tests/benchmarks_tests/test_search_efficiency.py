"""The search-efficiency benchmark's harness: it runs, and it counts epochs and budgets right.

Who wins is not tested here (that is what the benchmark itself measures).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from stagetune.spaces import core_plan

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_efficiency.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_efficiency", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _trial(state: TrialState, steps: int, **attrs: Any) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"lr": 1e-3},
        distributions={"lr": FloatDistribution(1e-4, 1e-2, log=True)},
        intermediate_values={step: 0.5 for step in range(1, steps + 1)},
        user_attrs=attrs,
    )


def test_a_pruned_trial_counts_its_partial_epochs(bench: ModuleType) -> None:
    assert bench.trial_epochs(_trial(TrialState.COMPLETE, 5, epochs_run=5)) == 5
    assert bench.trial_epochs(_trial(TrialState.PRUNED, 2, epochs_run=2)) == 2
    # A non-finite loss ends the trial in an epoch it never reported: that epoch trained too.
    nan = _trial(TrialState.PRUNED, 1, prune_reason="non-finite training loss nan at epoch 2")
    assert bench.trial_epochs(nan) == 2


def test_the_staged_methods_run_the_plan_at_the_budget(bench: ModuleType) -> None:
    plan = core_plan("mlp")
    pruned = bench.budget_plan(plan, 20, prune=True)
    assert pruned.budget == 20
    assert [s.pruner for s in pruned.stages] == [s.pruner for s in plan.stages]
    unpruned = bench.budget_plan(plan, 20, prune=False)
    assert {s.pruner.kind for s in unpruned.stages} == {"none"}
    assert unpruned.stage_fractions() == plan.stage_fractions()


def test_joint_search_spends_exactly_its_budget_partial_trials_included(
    bench: ModuleType,
) -> None:
    job = bench.Job("digits-mlp", "random", seed=0, trials=4, epochs=3)
    run = bench.run_job(job)
    epochs = [t["epochs"] for t in run["trials"]]
    assert run["epochs_spent"] == sum(epochs) == job.budget == 12
    # Successive halving prunes after epoch 1, so more trials than trial-equivalents run,
    # and their partial epochs are what the budget is charged.
    assert len(run["trials"]) > job.trials
    assert any(t["state"] == "PRUNED" and t["epochs"] < job.epochs for t in run["trials"])
    assert all(t["epochs"] == t["epochs_run"] for t in run["trials"])
    assert [t["seed"] for t in run["trials"]] == list(range(len(run["trials"])))
    complete = [t for t in run["trials"] if t["state"] == "COMPLETE"]
    assert complete and all(0.0 <= t["test"] <= 1.0 for t in complete)


def test_staged_search_spends_its_epoch_budget_with_seeds_in_trial_order(
    bench: ModuleType,
) -> None:
    job = bench.Job("digits-mlp", "staged-noprune", seed=1, trials=4, epochs=2)
    run = bench.run_job(job)
    # 8 epochs: the shares 0.45/0.275/0.275 give cumulative targets 4, 6, 8
    assert run["epochs_spent"] == job.budget == 8
    assert [t["epochs"] for t in run["trials"]] == [2, 2, 2, 2]
    assert [t["stage"] for t in run["trials"]] == ["lr", "lr", "weight_decay", "regularization"]
    # Trial i of the whole search trains with the same torch seed as a joint search's trial i.
    assert [t["seed"] for t in run["trials"]] == [1000, 1001, 1002, 1003]
    assert all(t["test"] is not None for t in run["trials"])


def test_picks_only_see_trials_that_ended_within_the_budget_fraction(bench: ModuleType) -> None:
    trials = [
        {"state": "COMPLETE", "value": 0.5, "epochs": 4, "test": 0.4},
        {"state": "PRUNED", "value": None, "epochs": 1, "test": None},
        {"state": "COMPLETE", "value": 0.9, "epochs": 4, "test": 0.8},
    ]
    run = {"direction": "maximize", "trials": trials}
    assert bench.pick_at(run, 3) is None
    assert bench.pick_at(run, 5)["value"] == 0.5
    assert bench.pick_at(run, 8)["value"] == 0.5
    assert bench.pick_at(run, 9)["value"] == 0.9
    assert bench.best_so_far(run) == [(4, 0.5), (5, 0.5), (9, 0.9)]
    assert bench.first_reach([run], 0.9, 9, "maximize") == 9
    assert bench.first_reach([run], 0.95, 9, "maximize") is None


def test_the_bootstrap_interval_holds_the_mean_and_is_reproducible(bench: ModuleType) -> None:
    values = [0.01, -0.002, 0.004, 0.02, 0.0, 0.006, -0.01, 0.012]
    mean, low, high = bench.bootstrap_mean(values)
    assert mean == pytest.approx(sum(values) / len(values))
    assert min(values) < low < mean < high < max(values)
    assert bench.bootstrap_mean(values) == (mean, low, high)
    # a wider interval for a higher level
    _, low99, high99 = bench.bootstrap_mean(values, level=0.99)
    assert low99 < low and high99 > high
    mean, low, high = bench.bootstrap_mean([0.5])  # one seed: a mean, no interval
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="at least one value"):
        bench.bootstrap_mean([])


def _run(
    method: str, seed: int, tests: list[float], direction: str = "maximize"
) -> dict[str, Any]:
    trials = [
        {"state": "COMPLETE", "value": t, "epochs": 5, "test": t} for t in tests
    ]  # validation = test here, so the pick at each fraction is the best so far
    return {"job": {"method": method, "seed": seed}, "direction": direction, "trials": trials}


def test_paired_differences_match_seeds_and_fractions(bench: ModuleType) -> None:
    methods = {
        "staged": [_run("staged", 0, [0.5, 0.9]), _run("staged", 1, [0.6, 0.7])],
        "tpe": [_run("tpe", 1, [0.8, 0.8]), _run("tpe", 0, [0.4, 0.6]), _run("tpe", 2, [1.0])],
    }
    result = bench.paired(methods, 10, "maximize")
    half, full = result["tpe"]["0.5"], result["tpe"]["1.0"]
    # seed 2 has no staged run: two pairs, seed by seed
    assert half["seeds"] == [0, 1] and half["n"] == 2
    assert half["diffs"] == pytest.approx([0.5 - 0.4, 0.6 - 0.8])
    assert full["diffs"] == pytest.approx([0.9 - 0.6, 0.7 - 0.8])
    assert full["mean"] == pytest.approx(0.1)
    # minimizing: the picks are the lowest values, and a lower staged value counts as better
    low = {k: [{**r, "direction": "minimize"} for r in v] for k, v in methods.items()}
    diffs = bench.paired(low, 10, "minimize")["tpe"]["1.0"]["diffs"]
    assert diffs == pytest.approx([-(0.5 - 0.4), -(0.6 - 0.8)])


def test_smoke_run_writes_the_table_and_the_plot(bench: ModuleType, tmp_path: Path) -> None:
    assert bench.main(["--preset", "smoke", "--workers", "1", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "search_efficiency.md").read_text()
    for method in bench.METHODS:
        assert f"| {method} |" in table
    assert "Budget 12 epochs = 4 trial-equivalents x 3 epochs" in table
    assert "| staged minus | @25% | @50% | @100% |" in table
    assert "- staged spends 100.0% of the epoch budget at least" in table
    assert (tmp_path / "search_efficiency.png").stat().st_size > 0
    assert len(list((tmp_path / "raw").glob("*.json"))) == len(bench.METHODS)


def test_a_variant_runs_the_staged_jobs_and_compares_them_seed_by_seed(
    bench: ModuleType, tmp_path: Path
) -> None:
    smoke = ["--preset", "smoke", "--workers", "1", "--out", str(tmp_path)]
    assert bench.main([*smoke, "--methods", "staged", "tpe"]) == 0
    assert bench.main([*smoke, "--variant", "reuse"]) == 0
    raw = tmp_path / "variants" / "reuse" / "raw"
    assert [p.name for p in raw.glob("*.json")] == ["digits-mlp__staged__s0.json"]
    run = json.loads((raw / "digits-mlp__staged__s0.json").read_text())
    assert run["job"]["variant"] == "reuse" and run["epochs_spent"] == run["budget"]
    # the reused trials trained nothing and are scored as the trial they repeat
    reused = [t for t in run["trials"] if t["epochs"] == 0]
    assert reused and all(t["test"] is not None for t in reused)
    table = (tmp_path / "variants" / "reuse.md").read_text()
    assert "| variant minus | @25% | @50% | @100% |" in table
    assert "| staged | " in table and "| tpe | " in table
    # the same jobs against another folder: each method seed by seed (here: itself)
    assert (
        bench.main([*smoke, "--methods", "staged", "--report-only", "--against", str(tmp_path)])
        == 0
    )
    assert "| staged | +0.00 [-] (1) |" in (tmp_path / "comparison.md").read_text()


def test_refine_narrows_float_params_around_the_best_inside_their_ranges(
    bench: ModuleType,
) -> None:
    from stagetune.spaces import CategoricalParam, FloatParam

    params = (
        FloatParam("lr", 1e-4, 1e-2, log=True),
        FloatParam("dropout", 0.0, 0.5),
        CategoricalParam("batch_size", (32, 64)),
    )
    lr, dropout = bench.refine_params(params, {"lr": 5e-3, "dropout": 0.05, "batch_size": 32})
    # log: within a factor of 3, cut at the range's top; linear: +- a quarter of the range
    assert (lr.low, lr.high) == pytest.approx((5e-3 / 3, 1e-2))
    assert (dropout.low, dropout.high) == pytest.approx((0.0, 0.05 + 0.125))
    # a value at an end of its range keeps the side of the neighbourhood inside it
    (wd,) = bench.refine_params((FloatParam("wd", 0.0, 1.0),), {"wd": 0.0})
    assert (wd.low, wd.high) == (0.0, 0.25)


def test_the_refine_variant_spends_the_rest_of_the_budget_around_the_staged_best(
    bench: ModuleType,
) -> None:
    job = bench.Job("digits-mlp", "staged", seed=0, trials=8, epochs=2, variant="refine")
    run = bench.run_job(job)
    assert run["epochs_spent"] == job.budget == 16
    stages = [t["stage"] for t in run["trials"]]
    # the stages get 7 of the 8 trial-equivalents (15% of 8, at least one, to the refinement)
    staged = [t for t in run["trials"] if t["stage"] != "refine"]
    assert sum(t["epochs"] for t in staged) == 14
    assert stages[len(staged) :] == ["refine"] * (len(stages) - len(staged))
    best = max((t for t in staged if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    refined = run["trials"][len(staged) :]
    assert refined and all(
        best["config"]["lr"] / 3 - 1e-12 <= t["config"]["lr"] <= best["config"]["lr"] * 3 + 1e-12
        for t in refined
    )
    # every trial trained with its own torch seed, so each has its own test score
    seeds = [t["seed"] for t in run["trials"]]
    assert len(set(seeds)) == len(seeds)
