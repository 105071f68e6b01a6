"""Training one configuration: tensors on the device, batched by index."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from objectives._optim import build_optimizer, build_scheduler

if TYPE_CHECKING:
    import torch

    from objectives._config import TrainConfig
    from objectives._tasks import Splits, Task

EVAL_BATCH = 4096


class NonFiniteLossError(ArithmeticError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(f"non-finite training loss {value} at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
        self.value = value


@dataclass(frozen=True)
class EpochStats:
    """What one epoch produced (``epoch`` counts from 1)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    lr: float


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    @property
    def final(self) -> EpochStats:
        return self.history[-1]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate(
    model: torch.nn.Module, task: Task, data: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    """``(loss, metric)`` of the model on ``data``, in evaluation mode."""
    import torch

    x, y = data
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(chunk) for chunk in x.split(EVAL_BATCH)])
        loss = float(task.loss(outputs, y).item())
        metric = task.metric(outputs, y)
    return loss, metric


def train(
    task: Task,
    splits: Splits,
    config: TrainConfig,
    *,
    epochs: int,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train a fresh model of ``task`` with ``config`` for ``epochs`` epochs.

    ``on_epoch`` is called after every epoch with its stats; raising from it
    (e.g. ``optuna.TrialPruned``) stops training.

    Raises:
        NonFiniteLossError: The training loss became NaN or infinite.
    """
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    model = task.build_model(config.model_params).to(device)
    x_train, y_train = (t.to(device) for t in splits.train)
    val = tuple(t.to(device) for t in splits.val)
    n_train = x_train.shape[0]
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch * epochs)
    result = TrainResult()

    for epoch in range(1, epochs + 1):
        # 1) one pass over the training tensors in a fresh random order
        model.train()
        losses = torch.empty(steps_per_epoch, device=device)
        order = torch.randperm(n_train, device=device, generator=generator)
        for step, index in enumerate(order.split(config.batch_size)):
            loss = task.loss(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # 2) clip the global gradient norm before the optimizer step
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses[step] = loss.detach()
        # 3) one device-to-host copy per epoch: losses, NaN guard, validation
        epoch_losses = losses.tolist()
        result.step_losses.extend(epoch_losses)
        for step, value in enumerate(epoch_losses):
            if not math.isfinite(value):
                raise NonFiniteLossError(epoch, step, value)
        val_loss, val_metric = evaluate(model, task, val)  # type: ignore[arg-type]
        stats = EpochStats(
            epoch=epoch,
            train_loss=sum(epoch_losses) / len(epoch_losses),
            val_loss=val_loss,
            val_metric=val_metric,
            lr=float(optimizer.param_groups[0]["lr"]),
        )
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return result
