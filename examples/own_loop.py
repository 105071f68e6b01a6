"""Tune your own training loop with stagetune: a function instead of a Task.

The model here takes dict batches (``{"image": ..., "label": ...}``) and trains on
two loss terms: classifying scikit-learn's 8x8 digits (they ship with
scikit-learn, nothing is downloaded) and reconstructing the image from the
features the classifier uses (an auxiliary loss). A Task (one input tensor, one
loss) cannot express that; a train function can. stagetune still runs the
guide's stages on it: the LR range test (through ``RangeTestLoop``), learning
rate, weight decay, regularization, and the final run, with pruning, resume and
workers as for a Task.

    python examples/own_loop.py                     # a small search, then its result
    python examples/own_loop.py --trials 6 --epochs 15 --workers 2
"""

from __future__ import annotations

import argparse
from functools import cache
from typing import Any

import torch
from torch import nn

from stagetune.objectives import RangeTestLoop, TrainFunction, TrialContext
from stagetune.search import StagedSearch
from stagetune.spaces import default_plan

#: Weight of the reconstruction term in the training loss.
AUX_WEIGHT = 0.5


# 1) The data: dict batches, built once per process.
@cache
def splits() -> dict[str, dict[str, torch.Tensor]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=0.25, random_state=0, stratify=y
    )

    def split(x: Any, y: Any) -> dict[str, torch.Tensor]:
        return {"image": torch.tensor(x, dtype=torch.float32), "label": torch.tensor(y)}

    return {"train": split(x_train, y_train), "val": split(x_val, y_val)}


def batches(data: dict[str, torch.Tensor], batch_size: int, seed: int) -> list[dict[str, Any]]:
    order = torch.randperm(len(data["label"]), generator=torch.Generator().manual_seed(seed))
    return [{k: v[i] for k, v in data.items()} for i in order.split(batch_size)]


# 2) The model: a dict in, a dict out.
class ClassifyAndReconstruct(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(64, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.classify = nn.Linear(hidden, 10)
        self.reconstruct = nn.Linear(hidden, 64)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = self.encoder(batch["image"])
        return {"logits": self.classify(features), "image": self.reconstruct(features)}


def build(params: dict[str, Any]) -> nn.Module:
    return ClassifyAndReconstruct(int(params.get("hidden", 64)), float(params["dropout"]))


# 3) Two loss terms.
def losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(batch)
    classify = nn.functional.cross_entropy(out["logits"], batch["label"])
    reconstruct = nn.functional.mse_loss(out["image"], batch["image"])
    return classify, reconstruct


def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    classify, reconstruct = losses(model, batch)
    return classify + AUX_WEIGHT * reconstruct


def evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> tuple[float, float]:
    """``(loss, accuracy)`` on a whole split."""
    model.eval()
    with torch.no_grad():
        out = model(data)
        accuracy = (out["logits"].argmax(-1) == data["label"]).float().mean().item()
        value = loss(model, data).item()
    model.train()
    return value, accuracy


# 4) The training loop: yours, with the guide's pieces one call each from ctx.
def fit(params: dict[str, Any], ctx: TrialContext) -> float:
    data = {k: {n: t.to(ctx.device) for n, t in v.items()} for k, v in splits().items()}
    model = build(params).to(ctx.device)
    optimizer = ctx.optimizer(model)  # AdamW, weight decay on weights only
    steps = ctx.epochs * len(batches(data["train"], params["batch_size"], 0))
    schedule = ctx.scheduler(optimizer, steps)  # the plan's schedule, with its warmup
    ctx.report(0, 0.0, val_loss=evaluate(model, data["val"])[0])  # untrained: for diagnoses
    accuracy = 0.0
    for epoch in range(1, ctx.epochs + 1):
        total = 0.0
        epoch_batches = batches(data["train"], params["batch_size"], ctx.seed + epoch)
        for batch in epoch_batches:
            optimizer.zero_grad(set_to_none=True)
            for part, weight in ctx.micro_batches(batch):  # gradient accumulation
                value = loss(model, part) * weight
                value.backward()
                total += value.item()
            ctx.clip(model)  # the plan's grad_clip, if any
            optimizer.step()
            schedule.step()
        val_loss, accuracy = evaluate(model, data["val"])
        schedule.end_epoch(val_loss)
        # to Optuna (pruning), and the curves for the diagnoses and notes
        ctx.report(epoch, accuracy, train_loss=total / len(epoch_batches), val_loss=val_loss)
    return accuracy


# 5) The LR range test drives the same model and loss, one batch per LR.
def range_batches(params: dict[str, Any]) -> list[dict[str, Any]]:
    return batches(splits()["train"], params["batch_size"], 0)


function = TrainFunction(
    fit,
    name="digits-two-losses",
    metric_name="accuracy",
    direction="maximize",
    epochs=10,
    range_test=RangeTestLoop(model=build, batches=range_batches, loss=loss),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite:///own_loop.db")
    parser.add_argument("--trials", type=int, default=4, help="trials per search stage")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    plan = default_plan("mlp", n_trials=args.trials)
    search = StagedSearch(plan, train=function, storage=args.storage, epochs=args.epochs)
    if args.workers > 1:
        from stagetune.search import run_workers

        result, _ = run_workers(search, args.workers)
    else:
        result = search.run()
    assert result is not None
    for stage in result.stages:
        print(f"{stage.name:<16} best {stage.best_value:.4g}  {stage.best_params}")
    print("final hyperparameters:", result.best_params)


if __name__ == "__main__":
    main()
