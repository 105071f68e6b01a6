"""Training one configuration, as fast as a hand-written loop.

Tensor data lives on the device and is batched by index (no DataLoader); a
``Dataset`` goes through a DataLoader with pinned memory and workers on CUDA.
On CUDA the loop runs in mixed precision (bf16 where supported, else fp16 with
a gradient scaler), feeds 4-D inputs as ``channels_last`` and can
``torch.compile`` the model. The loss reaches the host once per epoch.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stagetune.objectives._optim import build_optimizer, build_scheduler, steps_per_epoch_only
from stagetune.objectives._tasks import is_tensor_data

if TYPE_CHECKING:
    import torch

    from stagetune.objectives._checkpoint import TrialCheckpoint
    from stagetune.objectives._config import TrainConfig
    from stagetune.objectives._tasks import Data, Splits, Task

#: Rows per forward pass when scoring the validation split.
EVAL_BATCH = 4096
#: DataLoader workers for Dataset splits on CUDA (capped by the CPU count).
CUDA_LOADER_WORKERS = 4


class NonFiniteLossError(ArithmeticError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(f"non-finite training loss {value} at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
        self.value = value


@dataclass(frozen=True)
class EpochStats:
    """What one epoch produced (``epoch`` counts from 1; ``seconds`` is its wall time)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    lr: float
    seconds: float = field(default=0.0, compare=False)


@dataclass
class TrainResult:
    """Every epoch's stats, every step's loss, and the best epoch.

    Attributes:
        best_epoch: Epoch with the best validation metric (the first of ties).
        best_val_metric: Its metric.
        stopped_early: Early stopping ended training before the last epoch.
        micro_batch_size: Examples per forward pass that were used.
        best_state: The best epoch's weights (on the CPU), when ``train`` was asked to keep them.
        resumed_from_epoch: The last epoch restored from a checkpoint (0: none).
    """

    history: list[EpochStats] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_metric: float = math.nan
    stopped_early: bool = False
    micro_batch_size: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from_epoch: int = 0

    @property
    def final(self) -> EpochStats:
        return self.history[-1]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def free_device_memory(device: torch.device) -> None:
    """Collect garbage and return cached CUDA blocks (after an out-of-memory error)."""
    import torch

    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


class Precision:
    """Autocast and gradient scaling for one run: bf16 or fp16 on CUDA, nothing on the CPU.

    Args:
        enabled: The config's ``amp`` flag.
        device: Where training runs; AMP is used only on CUDA.
    """

    def __init__(self, enabled: bool, device: torch.device) -> None:
        import torch

        self.dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        if enabled and device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self.dtype == torch.float16:
                self.scaler = torch.amp.GradScaler("cuda")
        self._device_type = device.type
        self._null = contextlib.nullcontext()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.dtype is None:
            return self._null
        return torch.autocast(device_type=self._device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()

    def step(
        self, optimizer: torch.optim.Optimizer, model: torch.nn.Module, clip: float | None
    ) -> None:
        """Clip the global gradient norm (after unscaling) and take the optimizer step."""
        import torch

        if self.scaler is not None and clip is not None:
            self.scaler.unscale_(optimizer)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()


def loader_workers(task: Task, device: torch.device) -> int:
    """DataLoader workers for a Dataset split: the task's, or 4 on CUDA and 0 on the CPU."""
    if task.num_workers is not None:
        return task.num_workers
    if device.type != "cuda":
        return 0
    return min(CUDA_LOADER_WORKERS, os.cpu_count() or 1)


_DEVICE_COPIES: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; copies to an accelerator are kept, so trials reuse them."""
    if tensor.device == device:
        return tensor
    key = (id(tensor), str(device))
    cached = _DEVICE_COPIES.get(key)
    if cached is not None and cached[0] is tensor:
        return cached[1]
    if len(_DEVICE_COPIES) >= 16:
        _DEVICE_COPIES.clear()
    moved = tensor.to(device)
    _DEVICE_COPIES[key] = (tensor, moved)  # holding `tensor` keeps its id unique
    return moved


class _Batches:
    """Training batches of one epoch, ``(inputs, targets)`` on the device."""

    def __init__(
        self, task: Task, data: Data, batch_size: int, device: torch.device, seed: int
    ) -> None:
        import torch

        self._device = device
        self._channels_last = False
        self._loader: torch.utils.data.DataLoader[Any] | None = None
        if is_tensor_data(data):
            x, y = data  # type: ignore[misc]
            self._x = to_device(x, device)
            self._y = to_device(y, device)
            self._generator = torch.Generator(device=device).manual_seed(seed)
            self.rows = int(self._x.shape[0])
            self.input_dims = self._x.dim()
        else:
            workers = loader_workers(task, device)
            self._loader = torch.utils.data.DataLoader(
                data,  # type: ignore[arg-type]
                batch_size=batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(seed),
                num_workers=workers,
                pin_memory=device.type == "cuda",
                persistent_workers=workers > 0,
            )
            self.rows = len(data)  # type: ignore[arg-type]
            self.input_dims = 1 + torch.as_tensor(data[0][0]).dim()
        self._batch_size = batch_size
        self.steps_per_epoch = math.ceil(self.rows / batch_size)

    def rng_state(self) -> torch.Tensor:
        """The state of the generator that orders the batches (for a checkpoint)."""
        generator = self._generator if self._loader is None else self._loader.generator
        assert generator is not None
        return generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        generator = self._generator if self._loader is None else self._loader.generator
        assert generator is not None
        generator.set_state(state)

    def use_channels_last(self) -> None:
        import torch

        self._channels_last = True
        if self._loader is None:
            self._x = self._x.contiguous(memory_format=torch.channels_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        if self._loader is None:
            order = torch.randperm(self.rows, device=self._device, generator=self._generator)
            x, y = self._x, self._y
            for index in order.split(self._batch_size):
                yield x[index], y[index]
            return
        for x, y in self._loader:
            x = x.to(self._device, non_blocking=True)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self._device, non_blocking=True)


def evaluate(
    model: torch.nn.Module,
    task: Task,
    data: Data,
    *,
    device: torch.device | None = None,
    batch_size: int = EVAL_BATCH,
    precision: Precision | None = None,
) -> tuple[float, float]:
    """``(loss, metric)`` of the model on a whole split, in evaluation mode.

    Args:
        model: The model, already on ``device``.
        task: Gives the loss and the metric.
        data: A pair of tensors or a Dataset.
        device: Where the model is (default: where its first parameter is).
        batch_size: Rows per forward pass.
        precision: Autocast to use (default: none).
    """
    import torch

    if device is None:
        device = next(model.parameters()).device
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    model.eval()
    with torch.no_grad():
        outputs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        for x, y in _eval_batches(task, data, device, batch_size):
            with autocast():
                outputs.append(model(x))
            targets.append(y)
        output = torch.cat(outputs).float()
        target = torch.cat(targets)
        loss = float(task.loss(output, target).item())
        metric = float(task.metric(output, target))
    return loss, metric


def _eval_batches(
    task: Task, data: Data, device: torch.device, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    import torch

    if is_tensor_data(data):
        x, y = (to_device(t, device) for t in data)  # type: ignore[union-attr]
        yield from zip(x.split(batch_size), y.split(batch_size), strict=True)
        return
    workers = loader_workers(task, device)
    loader = torch.utils.data.DataLoader(
        data,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def train(
    task: Task,
    splits: Splits,
    config: TrainConfig,
    *,
    epochs: int,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
    eval_batch_size: int = EVAL_BATCH,
    checkpoint: TrialCheckpoint | None = None,
    on_resume: Callable[[list[EpochStats]], None] | None = None,
    keep_best: bool = False,
) -> TrainResult:
    """Train a fresh model of ``task`` with ``config`` for up to ``epochs`` epochs.

    ``on_epoch`` is called after every epoch with its stats; raising from it
    (e.g. ``optuna.TrialPruned``) stops training. The LR schedule steps once per
    optimizer step, except ReduceLROnPlateau, which steps once per epoch with
    the validation loss.

    Args:
        task: The model builder, loss and metric.
        splits: Train and validation data.
        config: Optimizer, schedule, batch, accumulation, precision, early stopping.
        epochs: Epochs to train (fewer when early stopping fires).
        device: Where to train.
        seed: Seeds the model's initialisation and the batch order.
        on_epoch: Called with each epoch's stats.
        eval_batch_size: Rows per forward pass when scoring the validation split.
        checkpoint: Loads the state to resume from before the first epoch, and saves
            the state at the end of an epoch when it is due
            (:mod:`stagetune.objectives._checkpoint`). A resumed run ends with the
            weights and metrics of an uninterrupted one (on the CPU: exactly).
        on_resume: Called once with the restored epochs' stats when training resumes
            from a checkpoint (to report them again).
        keep_best: Keep a CPU copy of the best epoch's weights in ``best_state``.

    Returns:
        The history, step losses and best epoch.

    Raises:
        NonFiniteLossError: The training loss became NaN or infinite.
        torch.cuda.OutOfMemoryError: The device ran out of memory.
    """
    import torch

    torch.manual_seed(seed)
    batches = _Batches(task, splits.train, config.batch_size, device, seed)
    model = task.build_model(config.model_params).to(device)
    if device.type == "cuda" and batches.input_dims == 4:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        batches.use_channels_last()
    runner: Callable[[torch.Tensor], torch.Tensor] = model
    if config.compile:
        runner = torch.compile(model)
    precision = Precision(config.amp, device)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, batches.steps_per_epoch * epochs)
    # ReduceLROnPlateau steps once per epoch with the validation loss; the others per step.
    plateau: Any = None
    step_scheduler: Any = scheduler
    if steps_per_epoch_only(scheduler):
        plateau, step_scheduler = scheduler, None
    micro = config.micro_batch_size
    result = TrainResult(micro_batch_size=micro)
    since_best = 0
    parts = _Parts(model, optimizer, scheduler, precision, batches)
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        since_best = _restore(state, parts, result)
        if on_resume is not None:
            on_resume(list(result.history))

    for epoch in range(result.resumed_from_epoch + 1, epochs + 1):
        started = time.perf_counter()
        # 1) one pass over the training data in a fresh random order
        model.train()
        losses: list[torch.Tensor] = []
        for x, y in batches:
            # 2) forward and backward (accumulated over micro-batches when the batch does
            # not fit), 3) clip the global gradient norm, step, and step the LR schedule
            loss = _train_step(task, model, runner, precision, optimizer, x, y, micro, config)
            if step_scheduler is not None:
                step_scheduler.step()
            losses.append(loss.detach())
        # 4) one device-to-host copy per epoch: losses, NaN guard, validation
        epoch_losses = torch.stack(losses).float().tolist()
        result.step_losses.extend(epoch_losses)
        for step, value in enumerate(epoch_losses):
            if not math.isfinite(value):
                raise NonFiniteLossError(epoch, step, value)
        val_loss, val_metric = evaluate(
            model, task, splits.val, device=device, batch_size=eval_batch_size, precision=precision
        )
        if plateau is not None:
            plateau.step(val_loss)
        stats = EpochStats(
            epoch=epoch,
            train_loss=sum(epoch_losses) / len(epoch_losses),
            val_loss=val_loss,
            val_metric=val_metric,
            lr=float(optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - started,
        )
        result.history.append(stats)
        # 5) early stopping on the validation metric
        if result.best_epoch == 0 or task.better(val_metric, result.best_val_metric):
            result.best_epoch, result.best_val_metric, since_best = epoch, val_metric, 0
            if keep_best:
                result.best_state = _cpu_copy(model)
        else:
            since_best += 1
        if on_epoch is not None:
            on_epoch(stats)
        patience = config.early_stopping_patience
        if patience is not None and since_best >= patience and epoch < epochs:
            result.stopped_early = True
            break
        # 6) a checkpoint when one is due (never after the last epoch)
        if checkpoint is not None and epoch < epochs and checkpoint.due():
            checkpoint.save(_capture(epoch, since_best, parts, result))
    return result


@dataclass(frozen=True)
class _Parts:
    """What a checkpoint saves and restores, besides the result."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    precision: Precision
    batches: _Batches


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _capture(epoch: int, since_best: int, parts: _Parts, result: TrainResult) -> dict[str, Any]:
    """The training state after ``epoch``: enough to go on as if nothing had stopped."""
    from stagetune.objectives._checkpoint import rng_state

    scaler = parts.precision.scaler
    return {
        "epoch": epoch,
        "since_best": since_best,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "batches_rng": parts.batches.rng_state(),
        "history": [asdict(stats) for stats in result.history],
        "step_losses": list(result.step_losses),
        "best_epoch": result.best_epoch,
        "best_val_metric": result.best_val_metric,
        "best_state": result.best_state,
    }


def _restore(state: dict[str, Any], parts: _Parts, result: TrainResult) -> int:
    """Load a checkpoint into the freshly built parts; returns the epochs since the best."""
    import torch

    from stagetune.objectives._checkpoint import set_rng_state

    with torch.no_grad():
        parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.scheduler is not None and state["scheduler"] is not None:
        parts.scheduler.load_state_dict(state["scheduler"])
    if parts.precision.scaler is not None and state["scaler"] is not None:
        parts.precision.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    parts.batches.set_rng_state(state["batches_rng"])  # a CPU byte tensor on any device
    result.history = [EpochStats(**stats) for stats in state["history"]]
    result.step_losses = list(state["step_losses"])
    result.best_epoch = int(state["best_epoch"])
    result.best_val_metric = float(state["best_val_metric"])
    result.best_state = state["best_state"]
    result.resumed_from_epoch = int(state["epoch"])
    return int(state["since_best"])


def _train_step(
    task: Task,
    model: torch.nn.Module,
    runner: Callable[[torch.Tensor], torch.Tensor],
    precision: Precision,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    micro: int,
    config: TrainConfig,
) -> torch.Tensor:
    """One optimizer step on the batch ``(x, y)``; returns the batch's mean loss.

    Forward and backward through ``runner`` (the model, or its compiled form), in
    micro-batches of ``micro`` rows when the batch is larger (the guide's gradient
    accumulation), then the global-norm clip and the step of ``precision``.
    """
    optimizer.zero_grad(set_to_none=True)
    if micro >= len(y):
        with precision.autocast():
            loss = task.loss(runner(x), y)
        precision.backward(loss)
    else:
        loss = _accumulate(task, runner, precision, x, y, micro)
    precision.step(optimizer, model, config.grad_clip)
    return loss


def _accumulate(
    task: Task,
    runner: Callable[[torch.Tensor], torch.Tensor],
    precision: Precision,
    x: torch.Tensor,
    y: torch.Tensor,
    micro: int,
) -> torch.Tensor:
    """Backward through ``x`` in micro-batches; returns the batch's mean loss (detached)."""
    rows = len(y)
    total: torch.Tensor | None = None
    for x_part, y_part in zip(x.split(micro), y.split(micro), strict=True):
        with precision.autocast():
            part = task.loss(runner(x_part), y_part) * (len(y_part) / rows)
        precision.backward(part)
        total = part.detach() if total is None else total + part.detach()
    assert total is not None  # rows >= 1
    return total
