"""Should the SGD learning-rate range reach above the guide's 0.1? Evidence on mnist1d-cnn.

Issue 11 noticed that every mnist1d-cnn pick (staged and joint) sits at LR 0.085-0.1,
the top of the guide's SGD range (1e-3 - 0.1). This script trains the task's
``cnn-scratch`` profile defaults (SGD + Nesterov, cosine, its weight decay and
dropout), changing only the LR, over a log grid that runs past 0.1, each LR with the
same seeds, and reports per LR the mean validation and test accuracy and the paired
difference against LR 0.1 (same seed: same initial weights and batch order) with a 90%
bootstrap interval.

Not part of the test suite (about 2-3 minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/sgd_range.py              # 9 LRs x 8 seeds
    .venv/bin/python benchmarks/sgd_range.py --seeds 3

Results: ``benchmarks/results/sgd_range.json`` and ``sgd_range.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from search_efficiency import bootstrap_mean  # beside this script: run as a file

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: 0.0316 ... 3.16, 4 per decade: three points inside the guide's range, six above it.
LRS = tuple(round(10 ** (k / 4), 4) for k in range(-6, 3))
REFERENCE = 0.1


def run(task_name: str, seeds: int) -> dict[str, Any]:
    import torch

    from stagetune.objectives import TrainConfig, evaluate, get_task, load_splits, train
    from stagetune.search import task_plan

    torch.set_num_threads(1)
    task = get_task(task_name)
    splits = load_splits(task)
    if splits.test is None:
        raise SystemExit(f"task {task_name!r} has no test split.")
    defaults = dict(task_plan(task).defaults)
    runs: dict[str, dict[str, list[float]]] = {}
    for lr in LRS:
        val, test = [], []
        for seed in range(seeds):
            params = {**defaults, "lr": lr}
            result = train(
                task,
                splits,
                TrainConfig.from_params(params),
                epochs=task.epochs,
                device=torch.device("cpu"),
                seed=seed,
                keep_best=True,  # the best epoch's weights, as the final run keeps them
            )
            val.append(result.best_val_metric)
            if result.best_state is None:  # diverged before a finite epoch
                test.append(0.0)
                continue
            model = task.build_model(params)
            model.load_state_dict(result.best_state)
            test.append(evaluate(model, task, splits.test)[1])
        runs[str(lr)] = {"val": val, "test": test}
        print(
            f"lr {lr:g}: val {statistics.mean(val):.4f} test {statistics.mean(test):.4f}",
            flush=True,
        )
    return {"task": task_name, "epochs": task.epochs, "defaults": defaults, "runs": runs}


def markdown(data: dict[str, Any], command: str) -> str:
    runs = data["runs"]
    ref = runs[str(REFERENCE)]
    lines = [
        f"# SGD learning rates past the guide's 0.1 on {data['task']}",
        "",
        f"Command: `{command}`; {data['epochs']} epochs, the profile's defaults but the LR; "
        f"{len(ref['val'])} seeds per LR (the same seeds for every LR).",
        "",
        "| lr | val acc (mean) | test acc (mean) | test minus lr 0.1, paired: mean [90% int.] |",
        "|---|---|---|---|",
    ]
    for lr, r in runs.items():
        diffs = [a - b for a, b in zip(r["test"], ref["test"], strict=True)]
        mean, low, high = bootstrap_mean(diffs)  # the search benchmark's paired interval
        cell = (
            "-"
            if float(lr) == REFERENCE
            else f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
        )
        lines.append(
            f"| {float(lr):g} | {100 * statistics.fmean(r['val']):.2f} | "
            f"{100 * statistics.fmean(r['test']):.2f} | {cell} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="mnist1d-cnn")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    data = run(args.task, args.seeds)
    data["wall_s"] = time.perf_counter() - started
    command = f".venv/bin/python benchmarks/sgd_range.py --task {args.task} --seeds {args.seeds}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sgd_range.json").write_text(json.dumps(data, indent=1))
    text = markdown(data, command)
    (args.out / "sgd_range.md").write_text(text)
    print(text)
    print(f"{data['wall_s']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
