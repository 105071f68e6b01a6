"""What tuning costs on top of training: stagetune's loop and storage, side by side.

Run by hand (not in CI)::

    .venv/bin/python benchmarks/overhead.py            # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/overhead.py --quick    # a smoke run, seconds

(a) Loop: the same model, data, batch size, epochs, optimizer (AdamW with the
    guide's decay/no-decay groups) and cosine schedule, trained by a
    hand-written PyTorch loop (index batches, ``loss.item()`` per step,
    validation each epoch) and by stagetune (``stagetune.objectives.train``, and a whole
    trial through ``StageObjective`` with per-epoch report and pruning on an
    in-memory study). Repetitions are interleaved so that load from other
    processes hits every variant alike; the table shows the best run of each
    (the least disturbed) and the throughput ratio hand-written time /
    stagetune time (1.0 = as fast), with the ratio of the medians beside it.

(b) Storage: a synthetic trial of 20 epochs of 50 ms of matrix products (1 s), which
    reports every epoch, asks the pruner (median, never prunes here) and sets
    stagetune's user attributes, run on Optuna's in-memory storage, Optuna's
    stock SQLite storage (``create_study(storage="sqlite:///...")``) and
    stagetune's default storage (``stagetune.storage.open_storage``: heartbeat, WAL,
    buffered reports) and the same storage without its buffering (WAL and
    ``synchronous=NORMAL``, heartbeat and retries, under Optuna's own cache:
    what ``create_study`` makes of ``open_storage(...).backend``). Overhead =
    wall time per trial - 1 s of work; the last column subtracts the in-memory
    storage's (sampler and pruner work, not storage).

``--only storage`` runs (b) alone; ``--rounds N`` sets its rounds (default 3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from stagetune.objectives import StageObjective, TrainConfig, get_task, load_splits, train  # noqa: E402
from stagetune.spaces import FloatParam  # noqa: E402
from stagetune.storage import claim_trial, open_storage  # noqa: E402

CPU = torch.device("cpu")


# --- (a) the loop ---------------------------------------------------------------------


def hand_written(task_name: str, config: TrainConfig, epochs: int, seed: int) -> float:
    """The loop a careful user writes by hand, following the guide; returns val accuracy."""
    task = get_task(task_name)
    splits = load_splits(task)
    torch.manual_seed(seed)
    model = task.build_model(config.model_params)
    x, y = splits.train  # type: ignore[misc]
    x_val, y_val = splits.val  # type: ignore[misc]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    steps = -(-len(y) // config.batch_size) * epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=steps, eta_min=config.eta_min
    )
    generator = torch.Generator().manual_seed(seed)
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        running = 0.0
        for index in torch.randperm(len(y), generator=generator).split(config.batch_size):
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            _ = F.cross_entropy(logits, y_val).item()
            accuracy = (logits.argmax(-1) == y_val).float().mean().item()
    return accuracy


def stagetune_train(task_name: str, config: TrainConfig, epochs: int, seed: int) -> float:
    task = get_task(task_name)
    result = train(task, load_splits(task), config, epochs=epochs, device=CPU, seed=seed)
    return result.final.val_metric


def stagetune_trial(task_name: str, config: TrainConfig, epochs: int, seed: int) -> float:
    """One whole trial: suggest, train, report and ask the pruner every epoch (in memory)."""
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
    )
    study.enqueue_trial({"lr": config.lr})
    objective = StageObjective(
        task=get_task(task_name),
        searched=(FloatParam("lr", config.lr / 10, config.lr * 10, log=True),),
        defaults={
            "lr": config.lr,
            "batch_size": config.batch_size,
            "weight_decay": config.weight_decay,
        },
        epochs=epochs,
        device=CPU,
        seed=seed,
    )
    study.optimize(objective, n_trials=1)
    value = study.trials[0].value
    assert value is not None
    return value


LOOPS: dict[str, Callable[[str, TrainConfig, int, int], float]] = {
    "hand-written": hand_written,
    "stagetune train()": stagetune_train,
    "stagetune trial": stagetune_trial,
}


def bench_loops(task_name: str, epochs: int, repeats: int) -> dict[str, list[float]]:
    config = TrainConfig(lr=3e-3, batch_size=64, weight_decay=1e-4)
    load_splits(get_task(task_name))  # data generated before timing
    for loop in LOOPS.values():  # warm-up: first-call costs out of the way
        loop(task_name, config, 1, 0)
    times: dict[str, list[float]] = {name: [] for name in LOOPS}
    for repeat in range(repeats):
        order = list(LOOPS.items())
        if repeat % 2:
            order.reverse()
        for name, loop in order:
            started = time.perf_counter()
            loop(task_name, config, epochs, repeat)
            times[name].append(time.perf_counter() - started)
    return times


# --- (b) storage ----------------------------------------------------------------------


EPOCHS = 20
EPOCH_SECONDS = 0.05
WORK = torch.randn(96, 96)


class NeverPrune(optuna.pruners.BasePruner):
    """The median pruner's reads, without its decisions (every trial runs 20 epochs)."""

    def __init__(self) -> None:
        self._median = optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        self._median.prune(study, trial)
        return False


def synthetic_objective(claim: bool) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        if claim:
            claim_trial(trial)
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("config", {"lr": lr})
        for epoch in range(1, EPOCHS + 1):
            # 50 ms of work that, like training, releases the GIL inside torch ops
            deadline = time.perf_counter() + EPOCH_SECONDS
            while time.perf_counter() < deadline:
                torch.mm(WORK, WORK)
            trial.report(lr * epoch, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        for key in ("epochs_run", "train_loss", "val_loss", "val_metric"):
            trial.set_user_attr(key, 1.0)
        return lr

    return objective


def _unbuffered(url: str) -> Any:
    """``open_storage``'s RDB storage (WAL, ``synchronous=NORMAL``, heartbeat, retries)
    without the write-behind buffer on top; ``create_study`` wraps it in Optuna's cache."""
    storage = open_storage(url)
    return getattr(storage, "backend", storage)


def bench_storage(trials: int, rounds: int) -> dict[str, list[float]]:
    directory = tempfile.mkdtemp(prefix="stagetune-bench-")
    storages: dict[str, Any] = {
        "Optuna in-memory": None,
        "Optuna stock SQLite": f"sqlite:///{directory}/stock.db",
        "stagetune default SQLite": open_storage(f"sqlite:///{directory}/stagetune.db"),
        "stagetune SQLite, WAL + NORMAL, unbuffered": _unbuffered(
            f"sqlite:///{directory}/unbuffered.db"
        ),
    }
    studies = {
        name: optuna.create_study(
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=0),
            pruner=NeverPrune(),
        )
        for name, storage in storages.items()
    }
    overheads: dict[str, list[float]] = {name: [] for name in storages}
    for round_ in range(rounds + 1):
        names = list(studies) if round_ % 2 else list(reversed(studies))
        for name in names:
            objective = synthetic_objective(claim=name.startswith("stagetune"))
            n = 1 if round_ == 0 else trials  # round 0: warm-up
            started = time.perf_counter()
            studies[name].optimize(objective, n_trials=n)
            per_trial = (time.perf_counter() - started) / n
            if round_ > 0:
                overheads[name].append(per_trial - EPOCHS * EPOCH_SECONDS)
    return overheads


# --- report ---------------------------------------------------------------------------


def _ratio(times: dict[str, list[float]], name: str) -> str:
    """Hand-written / stagetune time, from the best runs and (in brackets) the medians."""
    hand, ours = times["hand-written"], times[name]
    return f"{min(hand) / min(ours):.3f} ({statistics.median(hand) / statistics.median(ours):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--only", choices=("loop", "storage"), help="run only (a) the loop or (b) the storage"
    )
    parser.add_argument("--rounds", type=int, help="rounds of (b), 4 trials each (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    print(f"torch {torch.__version__}, optuna {optuna.__version__}, {args.threads} thread(s), CPU")
    if args.only != "storage":
        report_loops(quick=args.quick)
    if args.only != "loop":
        trials, rounds = (2, 1) if args.quick else (4, 3)
        report_storage(trials, args.rounds or rounds)


def report_loops(*, quick: bool) -> None:
    loop_plan = {"digits-mlp": 20, "mnist1d-cnn": 5}
    repeats = 2 if quick else 11
    if quick:
        loop_plan = {"digits-mlp": 2, "mnist1d-cnn": 1}
    print(
        f"\n(a) Training loop: seconds per run, best of {repeats} interleaved runs; ratio = "
        "hand-written / stagetune (1.0 = as fast; in brackets: the same from the medians)\n"
    )
    print("| task | epochs | hand-written | stagetune train() | ratio | stagetune trial | ratio |")
    print("|---|---|---|---|---|---|---|")
    for task_name, epochs in loop_plan.items():
        times = bench_loops(task_name, epochs, repeats)
        best = {name: min(values) for name, values in times.items()}
        print(
            f"| {task_name} | {epochs} | {best['hand-written']:.3f} "
            f"| {best['stagetune train()']:.3f} | {_ratio(times, 'stagetune train()')} "
            f"| {best['stagetune trial']:.3f} | {_ratio(times, 'stagetune trial')} |"
        )


def report_storage(trials: int, rounds: int) -> None:
    print(
        f"\n(b) Storage overhead per 1-second trial ({EPOCHS} reports + pruner reads, "
        f"{rounds} rounds of {trials} trials each: median, and the rounds' range)\n"
    )
    print("| storage | overhead per trial | share of a 1 s trial | above in-memory | rounds |")
    print("|---|---|---|---|---|")
    rounds_by_name = bench_storage(trials, rounds)
    overheads = {name: statistics.median(v) for name, v in rounds_by_name.items()}
    memory = overheads["Optuna in-memory"]
    for name, median in overheads.items():
        low, high = min(rounds_by_name[name]), max(rounds_by_name[name])
        print(
            f"| {name} | {1000 * median:.1f} ms | {100 * median:.1f}% "
            f"| {100 * (median - memory):+.1f}% | {1000 * low:.1f}-{1000 * high:.1f} ms |"
        )


if __name__ == "__main__":
    main()
