"""Which LR range-test rule to trust: evidence on digits-mlp and a 1-D CNN on mnist1d.

For each task this script

1. runs the range test (``stagetune.objectives.run_range_test``, torch-lr-finder semantics,
   1e-7 -> 10 over 100 batches, AdamW) with several seeds and records, per seed,
   why it stopped and the LR each candidate rule suggests:
   ``steepest / 5`` (guide, step 2), ``steepest`` (torch-lr-finder),
   ``min-loss / 10`` and ``min-loss / 3`` (guide, "The LR Range Test");
2. finds the best LR by brute force: a log grid of LRs (4 per decade), each trained
   for the task's epochs with a cosine schedule and several seeds (mean validation
   metric);
3. trains at every rule's suggestion (one run per seed) and reports, per rule,
   the spread of the suggestion across seeds, its ratio to the best LR, the
   validation metric it reaches, and how often a +-3x / +-10x window around it
   (clipped to the guide range, as the LR stage does) contains the best LR;
4. runs the LR stage itself (TPE, 10 trials, median pruning) with several seeds,
   once over the guide range starting at the guide default and once over the
   range test's window starting at its suggestion (stage 0 -> 1 of the default
   plan), and reports the best validation metric each reaches.

Not part of the test suite. Timings and metrics come from a shared 2-core
machine; re-run on a quiet one for final numbers::

    .venv/bin/python benchmarks/lr_range_test.py                  # both tasks, 10 seeds
    .venv/bin/python benchmarks/lr_range_test.py --tasks digits-mlp --seeds 3

``mnist1d`` (``pip install mnist1d``) is needed for the CNN task unless stagetune
already has an ``mnist1d-cnn`` task. Results: ``--out`` (JSON) and a Markdown
summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from stagetune.objectives import (
    TASKS,
    RangeTestResult,
    Splits,
    Task,
    TrainConfig,
    get_task,
    load_splits,
    run_range_test,
    train,
)
from stagetune.spaces import LEARNING_RATE, Plan, RangeTestSpec, narrow_lr_range

CPU = torch.device("cpu")
RULES: dict[str, Callable[[RangeTestResult], float]] = {
    "steepest/5": lambda r: r.steepest_lr() / 5,
    "steepest": lambda r: r.steepest_lr(),
    "min_loss/10": lambda r: r.min_loss_lr() / 10,
    "min_loss/3": lambda r: r.min_loss_lr() / 3,
}
#: The AdamW-from-scratch search range (spaces/_guide.py), the clip range of the LR stage.
GUIDE = LEARNING_RATE["adamw_scratch"]


def mnist1d_cnn_task() -> Task:
    """``mnist1d-cnn`` from stagetune when it has one, else a small 1-D CNN here."""
    if "mnist1d-cnn" in TASKS:
        return get_task("mnist1d-cnn")

    def load() -> Splits:
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())  # generated locally, no download
        x = torch.tensor(data["x"], dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(data["y"]).long()
        x_test = torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(1)
        y_test = torch.tensor(data["y_test"]).long()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        train_idx, val_idx = order[:3200], order[3200:]
        return Splits((x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), (x_test, y_test))

    def build(params: Mapping[str, Any]) -> torch.nn.Module:
        from torch import nn

        channels = 32
        return nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(float(params.get("dropout", 0.0))),
            nn.Linear(channels * 5, 10),
        )

    return Task(name="mnist1d-cnn-bench", load=load, build_model=build, epochs=20)


def config_for(task: Task) -> TrainConfig:
    """AdamW with the MLP profile's step-1 defaults (the issue's evidence used AdamW)."""
    dropout = 0.3 if task.name == "digits-mlp" else 0.1
    return TrainConfig(
        optimizer="adamw",
        lr=1e-3,
        weight_decay=1e-4,
        batch_size=64,
        scheduler="cosine",
        dropout=dropout,
    )


def val_metric(task: Task, splits: Splits, config: TrainConfig, lr: float, seed: int) -> float:
    try:
        result = train(
            task,
            splits,
            TrainConfig(**{**config.__dict__, "lr": lr}),
            epochs=task.epochs,
            device=CPU,
            seed=seed,
        )
    except ArithmeticError:
        return 0.0
    return result.final.val_metric


def grid(task: Task, splits: Splits, config: TrainConfig, seeds: int) -> dict[float, float]:
    lrs = [10 ** (k / 4) for k in range(-16, -3)]  # 1e-4 ... 1e-1
    return {
        lr: statistics.mean(val_metric(task, splits, config, lr, 100 + s) for s in range(seeds))
        for lr in lrs
    }


def bench_task(task: Task, seeds: int, grid_seeds: int) -> dict[str, Any]:
    splits = load_splits(task)
    config = config_for(task)
    started = time.perf_counter()
    specs = {
        "diverge5+plateau (stagetune)": RangeTestSpec(),
        "diverge5 only (torch-lr-finder)": RangeTestSpec(plateau_patience=0),
        "diverge4 only": RangeTestSpec(plateau_patience=0, diverge_th=4.0),
    }
    tests: dict[str, list[RangeTestResult]] = {
        name: [
            run_range_test(task, splits, config, spec, device=CPU, seed=s) for s in range(seeds)
        ]
        for name, spec in specs.items()
    }
    range_test_s = (time.perf_counter() - started) / (len(specs) * seeds)
    truth = grid(task, splits, config, grid_seeds)
    best_lr = max(truth, key=truth.__getitem__)
    # LRs as good as the best within one validation example (seed noise is larger).
    tolerance = 1.0 / len(splits.val[1])
    good = [lr for lr, value in truth.items() if value >= truth[best_lr] - tolerance]
    runs = tests["diverge5+plateau (stagetune)"]
    rules: dict[str, Any] = {}
    for rule, pick in RULES.items():
        suggestions = [pick(r) for r in runs]
        metrics = [
            val_metric(task, splits, config, lr, 100 + s) for s, lr in enumerate(suggestions)
        ]
        coverage = {}
        for window in (3.0, 10.0):
            windows = [
                narrow_lr_range(s, GUIDE.search_low, GUIDE.search_high, window=window)
                for s in suggestions
            ]
            coverage[f"x{window:g}"] = sum(w.low <= best_lr <= w.high for w in windows)
            unclipped = sum(s / window <= best_lr <= s * window for s in suggestions)
            coverage[f"x{window:g} unclipped"] = unclipped
            coverage[f"x{window:g} has a good LR"] = sum(
                any(w.low <= lr <= w.high for lr in good) for w in windows
            )
        rules[rule] = {
            "suggestions": suggestions,
            "min": min(suggestions),
            "max": max(suggestions),
            "spread": max(suggestions) / min(suggestions),
            "best_over_suggestion_geomean": math.exp(
                statistics.mean(math.log(best_lr / s) for s in suggestions)
            ),
            "val_metric_mean": statistics.mean(metrics),
            "val_metric_min": min(metrics),
            "inside_guide_range": sum(
                GUIDE.search_low <= s <= GUIDE.search_high for s in suggestions
            ),
            "window_contains_best": coverage,
        }
    return {
        "task": task.name,
        "seeds": seeds,
        "grid_seeds": grid_seeds,
        "range_test_seconds": range_test_s,
        "stop_reasons": {
            name: {
                reason: sum(r.stop_reason == reason for r in results)
                for reason in ("diverged", "plateau", "end", "non_finite")
            }
            for name, results in tests.items()
        },
        "batches_run": {name: [len(r.lrs) for r in results] for name, results in tests.items()},
        "grid": {f"{lr:.3g}": value for lr, value in truth.items()},
        "best_lr": best_lr,
        "good_lrs": good,
        "best_val_metric": truth[best_lr],
        "rules": rules,
    }


def lr_stage(task: Task, seeds: int, trials: int) -> dict[str, list[float]]:
    """Best validation metric of the LR stage, with and without the range test before it."""
    import tempfile

    from stagetune.search import StagedSearch
    from stagetune.spaces import default_plan

    plan = default_plan("mlp", n_trials=trials)
    defaults = {**plan.defaults, "dropout": config_for(task).dropout}
    variants = {
        "guide range": Plan((plan.stage("lr"),), defaults, profile="mlp"),
        "range test + window": Plan(
            (plan.stage("lr_range_test"), plan.stage("lr")), defaults, profile="mlp"
        ),
    }
    found: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            for name, variant in variants.items():
                search = StagedSearch(
                    variant,
                    task,
                    storage=f"sqlite:///{tmp}/s{seed}.db",
                    name=f"{name.replace(' ', '_').replace('+', 'and')}",
                    seed=1000 * seed,
                    progress=None,
                    device="cpu",
                )
                found[name].append(search.run().stages[-1].best_value or 0.0)
    return found


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for res in results:
        lines.append(
            f"\n### {res['task']}: best LR {res['best_lr']:.3g} "
            f"(val {res['best_val_metric']:.4f}, grid of {len(res['grid'])} LRs x "
            f"{res['grid_seeds']} seeds); {res['seeds']} range-test seeds, "
            f"{res['range_test_seconds']:.2f} s per range test; LRs within one validation "
            f"example of the best: {', '.join(f'{lr:.3g}' for lr in res['good_lrs'])}\n"
        )
        lines.append(
            "| rule | suggestions (min - max) | spread | best / suggestion | "
            "val at suggestion (mean, min) | in guide range | +-3x has best | "
            "+-10x has best (unclipped) | +-10x has a good LR |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        n = res["seeds"]
        for rule, r in res["rules"].items():
            cov = r["window_contains_best"]
            lines.append(
                f"| {rule} | {r['min']:.2g} - {r['max']:.2g} | {r['spread']:.1f}x | "
                f"{r['best_over_suggestion_geomean']:.2f} | {r['val_metric_mean']:.4f}, "
                f"{r['val_metric_min']:.4f} | {r['inside_guide_range']}/{n} | "
                f"{cov['x3']}/{n} | {cov['x10']}/{n} ({cov['x10 unclipped']}/{n}) | "
                f"{cov['x10 has a good LR']}/{n} |"
            )
        stage = res.get("lr_stage")
        if stage:
            lines.append(
                "\nLR stage (TPE, {} trials) best val per seed: ".format(res["lr_stage_trials"])
                + "; ".join(
                    f"{name}: mean {statistics.mean(values):.4f} "
                    f"[{', '.join(f'{v:.4f}' for v in values)}]"
                    for name, values in stage.items()
                )
            )
        lines.append(
            "\nstop reasons: "
            + "; ".join(
                f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                for name, counts in res["stop_reasons"].items()
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="digits-mlp,mnist1d-cnn")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--grid-seeds", type=int, default=3)
    parser.add_argument("--search-seeds", type=int, default=5)
    parser.add_argument("--search-trials", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/lr_range_test.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    for name in args.tasks.split(","):
        task = mnist1d_cnn_task() if name == "mnist1d-cnn" else get_task(name)
        started = time.perf_counter()
        result = bench_task(task, args.seeds, args.grid_seeds)
        if args.search_seeds:
            result["lr_stage"] = lr_stage(task, args.search_seeds, args.search_trials)
            result["lr_stage_trials"] = args.search_trials
        results.append(result)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
