"""What checkpoints inside a trial cost per epoch, on the built-in tasks.

Run by hand (not in CI)::

    .venv/bin/python benchmarks/checkpoint_cost.py            # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/checkpoint_cost.py --quick    # a smoke run

Each built-in task trains its profile's default config for ``--epochs`` epochs
on the CPU, three ways, interleaved ``--repeats`` times so that load from
other processes hits them alike:

* ``none``: no checkpoint;
* ``every epoch``: ``CheckpointPolicy(every=0)``, the worst case (a save after
  every epoch, to a ``FileSystemArtifactStore`` beside a SQLite study);
* ``default``: ``CheckpointPolicy()`` (every 60 s, at most 2% of the time).

It prints, per task, the median epoch time of each, the time of one save, the
checkpoint's size, and the overhead per epoch of saving every epoch. The table
is written to ``benchmarks/results/checkpoint_cost.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.artifacts import FileSystemArtifactStore  # noqa: E402

from stagetune.objectives import TASKS, CheckpointPolicy, TrainConfig, load_splits, train  # noqa: E402
from stagetune.search import task_plan  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _epoch_times(task_name: str, epochs: int, every: float | None, work: Path) -> dict[str, Any]:
    task = TASKS[task_name]
    config = TrainConfig.from_params(task_plan(task).defaults)
    study = optuna.create_study(storage=f"sqlite:///{work / 'bench.db'}")
    trial = study.ask()
    checkpoint = None
    if every is not None:
        (work / "artifacts").mkdir(exist_ok=True)
        checkpoint = CheckpointPolicy(FileSystemArtifactStore(work / "artifacts"), every=every)
        checkpoint = checkpoint.for_trial(trial)
    started = time.perf_counter()
    result = train(
        task,
        load_splits(task),
        config,
        epochs=epochs,
        device=torch.device("cpu"),
        seed=0,
        checkpoint=checkpoint,
    )
    total = time.perf_counter() - started
    size = sum(f.stat().st_size for f in (work / "artifacts").iterdir()) if checkpoint else 0
    return {
        "epoch_s": [s.seconds for s in result.history],
        "total_s": total,
        "saves": checkpoint.saves if checkpoint else 0,
        "save_s": checkpoint.save_seconds if checkpoint else 0.0,
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 repeat, one task")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    tasks = ["digits-mlp"] if args.quick else sorted(TASKS)
    epochs, repeats = (2, 1) if args.quick else (args.epochs, args.repeats)
    modes: dict[str, float | None] = {"none": None, "every epoch": 0.0, "default": 60.0}
    rows = []
    for task_name in tasks:
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for _ in range(repeats):
            for mode, every in modes.items():
                with tempfile.TemporaryDirectory() as work:
                    runs[mode].append(_epoch_times(task_name, epochs, every, Path(work)))

        # The first epoch of a run includes warm-up; the rest are comparable.
        def epoch_median(mode: str, runs: dict[str, list[dict[str, Any]]] = runs) -> float:
            return statistics.median(t for run in runs[mode] for t in run["epoch_s"][1:])

        saves = sum(run["saves"] for run in runs["every epoch"])
        save_s = sum(run["save_s"] for run in runs["every epoch"]) / max(saves, 1)
        plain = epoch_median("none")
        rows.append(
            {
                "task": task_name,
                "epoch_s_none": plain,
                "epoch_s_every_epoch": epoch_median("every epoch"),
                "epoch_s_default": epoch_median("default"),
                "save_s": save_s,
                "checkpoint_bytes": runs["every epoch"][-1]["bytes"],
                "overhead_every_epoch": save_s / plain,
                "default_saves": sum(run["saves"] for run in runs["default"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "| task | epoch (no checkpoint) | one save | checkpoint size | "
        "saving every epoch costs | default (60 s) saves |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['epoch_s_none'] * 1000:.0f} ms | "
            f"{row['save_s'] * 1000:.1f} ms | {row['checkpoint_bytes'] / 1024:.0f} KiB | "
            f"{row['overhead_every_epoch']:.1%} of an epoch | {row['default_saves']} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        command = "benchmarks/checkpoint_cost.py " + " ".join(argv or sys.argv[1:])
        (RESULTS / "checkpoint_cost.md").write_text(
            f"Checkpoint cost per epoch, CPU, 1 torch thread, {epochs} epochs x {repeats} "
            f"repeats (`{command.strip()}`):\n\n{table}\n"
        )
        (RESULTS / "checkpoint_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
