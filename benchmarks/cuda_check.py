"""Check stagetune's CUDA paths on a GPU machine, in under 3 minutes.

Run by hand on a machine with a GPU (nothing is downloaded)::

    .venv/bin/python benchmarks/cuda_check.py            # all checks
    .venv/bin/python benchmarks/cuda_check.py --device cpu --quick   # smoke run without a GPU

It prints, per task (digits-mlp, mnist1d-cnn, mnist1d-transformer, and a 2-D
CNN on the 8x8 digits that exercises channels_last):

* where the data and the model were during training (device, channels_last);
* the median epoch time with AMP off and on (bf16 where supported), at the
  default batch (64) and at 512;
* ``torch.compile`` on digits-mlp (first epoch, then steady epochs);
* a real CUDA out-of-memory error caught and retried at half the micro-batch;
* trials per minute of a small staged search (the range test, 3 stages x 3 trials, the final run);
* trials per minute with 1, 2 and 4 worker processes packed on one GPU
  (``--workers-per-gpu``), the three search stages x 4 trials on digits-mlp;
* checkpoint-resume on the device: a run stopped after epoch 3 and resumed from its
  checkpoint ends where an uninterrupted run does (exactly on the CPU; on CUDA within
  cuDNN/AMP nondeterminism), and the checkpoint holds the CUDA RNG state.

Every check prints PASS or FAIL; the exit code is the number of FAILs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from stagetune.objectives import (  # noqa: E402
    CheckpointPolicy,
    StageObjective,
    Task,
    TrainConfig,
    get_task,
    load_splits,
    train,
)
from stagetune.search import StagedSearch, run_workers  # noqa: E402
from stagetune.spaces import FloatParam, core_plan, default_plan  # noqa: E402

FAILURES: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}")
    if not ok:
        FAILURES.append(name)


class Probe(nn.Module):
    """Wraps a model and records where its inputs and parameters are."""

    seen: ClassVar[dict[str, Any]] = {}

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            parameter = next(self.inner.parameters())
            Probe.seen = {
                "input": str(x.device),
                "model": str(parameter.device),
                "channels_last": x.dim() == 4
                and x.is_contiguous(memory_format=torch.channels_last),
                "weights_channels_last": parameter.dim() == 4
                and parameter.is_contiguous(memory_format=torch.channels_last),
            }
        return self.inner(x)


def probed(task: Task) -> Task:
    def build(params: Mapping[str, Any]) -> nn.Module:
        return Probe(task.build_model(params))

    return Task(
        name=task.name, load=task.load, build_model=build, profile=task.profile, epochs=task.epochs
    )


def digits_cnn2d() -> Task:
    """A small 2-D CNN on the 8x8 digits as (1, 8, 8) images: 4-D inputs, channels_last."""
    digits = get_task("digits-mlp")

    def load() -> Any:
        from stagetune.objectives import Splits

        splits = digits.load()

        def image(pair: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return pair[0].reshape(-1, 1, 8, 8), pair[1]

        return Splits(image(splits.train), image(splits.val), image(splits.test))

    def build(params: Mapping[str, Any]) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )

    return Task(name="digits-cnn2d", load=load, build_model=build, profile="cnn")


TASK_PARAMS: dict[str, dict[str, Any]] = {
    "digits-mlp": {"lr": 3e-3},
    "digits-cnn2d": {"lr": 3e-3},
    "mnist1d-cnn": {"lr": 3e-3},
    "mnist1d-transformer": {
        "lr": 1e-3,
        "scheduler": "cosine_warmup",
        "warmup_fraction": 0.06,
        "grad_clip": 1.0,
    },
}


def epoch_times(task: Task, params: dict[str, Any], device: torch.device, epochs: int) -> Any:
    result = train(
        task,
        load_splits(task),
        TrainConfig.from_params(params),
        epochs=epochs,
        device=device,
        seed=0,
    )
    steady = [h.seconds for h in result.history[1:]] or [result.history[0].seconds]
    return statistics.median(steady), result.history[0].seconds, result.final.val_metric


def check_tasks(device: torch.device, epochs: int) -> None:
    cuda = device.type == "cuda"
    for name, params in TASK_PARAMS.items():
        task = digits_cnn2d() if name == "digits-cnn2d" else get_task(name)
        print(f"\n{name}")
        load_splits(task)
        epoch_times(probed(task), params, device, 1)  # warm-up, and where things are
        seen = dict(Probe.seen)
        check("data on the device", seen["input"].startswith(device.type), seen["input"])
        check("model on the device", seen["model"].startswith(device.type), seen["model"])
        if name == "digits-cnn2d" and cuda:
            check("4-D inputs are channels_last", seen["channels_last"])
            check("conv weights are channels_last", seen["weights_channels_last"])
        for batch in (64, 512):
            row = []
            for amp in (False, True):
                median, first, metric = epoch_times(
                    task, {**params, "batch_size": batch, "amp": amp}, device, epochs
                )
                row.append(median)
                print(
                    f"    batch {batch:>3}  amp={'on ' if amp else 'off'}  epoch {median:.4f} s "
                    f"(first {first:.3f} s)  val accuracy {metric:.3f}"
                )
            print(f"    batch {batch:>3}  AMP speed-up x{row[0] / row[1]:.2f}")


def check_compile(device: torch.device, epochs: int) -> None:
    print("\ntorch.compile on digits-mlp")
    task = get_task("digits-mlp")
    started = time.perf_counter()
    median, first, metric = epoch_times(task, {"lr": 3e-3, "compile": True}, device, epochs)
    total = time.perf_counter() - started
    print(f"    first epoch {first:.2f} s (compiling), then {median:.4f} s; total {total:.1f} s")
    check("compiled model trains", metric > 0.8, f"val accuracy {metric:.3f}")


class Hungry(nn.Module):
    """Allocates memory in proportion to its batch: 64 rows need more than the GPU has free."""

    def __init__(self, bytes_per_row: int) -> None:
        super().__init__()
        self.net = get_task("digits-mlp").build_model({})
        self.bytes_per_row = bytes_per_row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            block = torch.empty(len(x) * self.bytes_per_row, dtype=torch.uint8, device=x.device)
            del block
        return self.net(x)


def check_out_of_memory(device: torch.device) -> None:
    print("\nreal CUDA out-of-memory, retried at half the micro-batch")
    torch.cuda.empty_cache()  # cached blocks would otherwise absorb the first allocation
    free, _ = torch.cuda.mem_get_info(device)
    bytes_per_row = int(free / 48)  # 64 rows: 1.33x free memory; 32 rows: 0.67x
    digits = get_task("digits-mlp")
    task = Task(name="hungry", load=digits.load, build_model=lambda p: Hungry(bytes_per_row))
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=task,
        searched=(FloatParam("lr", 1e-3, 1e-2, log=True),),
        defaults={"lr": 3e-3, "batch_size": 64},
        epochs=1,
        device=device,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    print(f"    {trial.state.name}; oom: {trial.user_attrs.get('oom', '-')[:100]}")
    check("trial completes after the retry", trial.state.name == "COMPLETE")
    check(
        "retried at micro-batch 32",
        trial.user_attrs.get("oom_retry", {}).get("micro_batch_size") == 32,
    )


def check_search(device: torch.device, epochs: int) -> None:
    for name in ("digits-mlp", "mnist1d-cnn"):
        print(
            f"\nstaged search on {name}: range test, 3 stages x 3 trials, final, "
            f"{epochs} epochs per trial"
        )
        with tempfile.TemporaryDirectory() as directory:
            search = StagedSearch(
                default_plan("mlp", n_trials=3),
                name,
                storage=f"sqlite:///{directory}/cuda.db",
                name="cuda",
                epochs=epochs,
                device=device,
                progress=None,
            )
            started = time.perf_counter()
            result = search.run()
            minutes = (time.perf_counter() - started) / 60
        trials = sum(stage.finished for stage in result.stages)
        print(f"    {trials} trials in {60 * minutes:.1f} s: {trials / minutes:.0f} trials/minute")
        budget = sum(stage.budget for stage in result.stages)  # range test + 3 x 3 + final
        check("search finished", trials == budget, f"best {result.best_value:.4f}")


def check_packed_workers(device: torch.device, epochs: int) -> None:
    counts = (1, 2, 4) if device.type == "cuda" else (1, 2)
    print(f"\npacked workers on one {device.type} device: 3 stages x 4 trials, {epochs} epochs")
    rates = {}
    for workers in counts:
        with tempfile.TemporaryDirectory() as directory:
            search = StagedSearch(
                core_plan("mlp", n_trials=4),
                "digits-mlp",
                storage=f"sqlite:///{directory}/packed.db",
                name="packed",
                epochs=epochs,
                progress=None,
            )
            # what `--workers N --gpus 0 --workers-per-gpu N` does: all on the first GPU
            on = f"{device.type}:0" if device.type == "cuda" else "cpu"
            started = time.perf_counter()
            result, exits = run_workers(search, workers, devices=[on] * workers)
            seconds = time.perf_counter() - started
        ok = result is not None and all(e.exitcode == 0 for e in exits)
        trials = sum(s.finished for s in result.stages) if result is not None else 0
        rates[workers] = 60 * trials / seconds
        print(
            f"    {workers} worker(s): {trials} trials in {seconds:.1f} s: "
            f"{rates[workers]:.0f} trials/minute"
        )
        check(f"{workers} packed worker(s) finished", ok and trials == 12)
    base = rates[1]
    print("    speed-up: " + ", ".join(f"{k}: x{v / base:.2f}" for k, v in rates.items()))


class _Stop(Exception):
    pass


def check_checkpoint_resume(device: torch.device, epochs: int) -> None:
    print(f"\ncheckpoint-resume on {device}: stopped after epoch 3 of {epochs}, resumed")
    task = get_task("mnist1d-cnn")
    splits = load_splits(task)
    config = TrainConfig.from_params({"lr": 3e-3, "dropout": 0.1, "scheduler": "cosine"})
    models: list[nn.Module] = []

    def build(params: Mapping[str, Any]) -> nn.Module:
        models.append(task.build_model(params))
        return models[-1]

    built = replace(task, build_model=build)
    plain = train(built, splits, config, epochs=epochs, device=device, seed=1)
    expected = {k: v.detach().cpu() for k, v in models[-1].state_dict().items()}

    def stop(stats: Any) -> None:
        if stats.epoch == 4:
            raise _Stop

    with tempfile.TemporaryDirectory() as directory:
        from optuna.artifacts import FileSystemArtifactStore

        study = optuna.create_study(storage=f"sqlite:///{directory}/ckpt.db")
        trial = study.ask()
        policy = CheckpointPolicy(FileSystemArtifactStore(directory), every=0)
        with contextlib.suppress(_Stop):
            train(
                built,
                splits,
                config,
                epochs=epochs,
                device=device,
                seed=1,
                on_epoch=stop,
                checkpoint=policy.for_trial(trial),
            )
        checkpoint = policy.for_trial(trial)
        state = checkpoint.load()
        has_cuda_rng = state is not None and ("cuda" in state["rng"]) == (device.type == "cuda")
        started = time.perf_counter()
        resumed = train(
            built,
            splits,
            config,
            epochs=epochs,
            device=device,
            seed=1,
            checkpoint=policy.for_trial(trial),
        )
        seconds = time.perf_counter() - started
    got = {k: v.detach().cpu() for k, v in models[-1].state_dict().items()}
    diff = max(float((got[k].float() - expected[k].float()).abs().max()) for k in expected)
    metric_diff = abs(resumed.final.val_metric - plain.final.val_metric)
    print(
        f"    resumed from epoch {resumed.resumed_from_epoch}; max weight difference {diff:.2e}, "
        f"val metric {resumed.final.val_metric:.4f} vs {plain.final.val_metric:.4f} "
        f"({seconds:.1f} s for the resumed epochs)"
    )
    check("resumed from the checkpoint of epoch 3", resumed.resumed_from_epoch == 3)
    check("the checkpoint holds the device's RNG state", has_cuda_rng)
    exact = device.type == "cpu"
    check(
        "same result as uninterrupted" + (" (exactly)" if exact else " (within 0.02)"),
        diff == 0.0 if exact else metric_diff <= 0.02,
        f"metric difference {metric_diff:.4f}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("No CUDA device: run with --device cpu for a smoke run.")
        return 1
    if device.type == "cpu":
        torch.set_num_threads(1)  # the smoke run: small models, a shared CPU
    started = time.perf_counter()
    print(f"torch {torch.__version__}, optuna {optuna.__version__}, device {device}")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        print(f"GPU {name}, bf16 supported: {torch.cuda.is_bf16_supported()}")
    epochs = 2 if args.quick else 5
    check_tasks(device, epochs)
    if not args.no_compile:
        check_compile(device, epochs)
    if device.type == "cuda":
        check_out_of_memory(device)
    check_search(device, 3 if args.quick else 10)
    check_packed_workers(device, 3 if args.quick else 10)
    check_checkpoint_resume(device, 5 if args.quick else 8)
    print(f"\n{len(FAILURES)} failed; {time.perf_counter() - started:.0f} s in all")
    return len(FAILURES)


if __name__ == "__main__":
    sys.exit(main())
