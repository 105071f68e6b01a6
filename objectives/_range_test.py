"""The LR range test (stage 0): an exponential LR sweep, one batch per LR.

torch-lr-finder's semantics: the LR of batch ``i`` is
``start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))``; the recorded loss is
exponentially smoothed (``s_i = f * l_i + (1 - f) * s_{i-1}``); the sweep stops
when the smoothed loss exceeds ``diverge_th`` times its minimum. Two more stops,
because the loss often flattens instead of exploding: a plateau (no new minimum
for ``plateau_patience`` batches after the loss fell by ``plateau_drop``), and
the sweep's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from stagetune.storage import TrialAttr

if TYPE_CHECKING:
    import optuna
    import torch

    from stagetune.objectives._config import TrainConfig
    from stagetune.objectives._tasks import Splits, Task
    from stagetune.spaces import FloatParam, Param, RangeTestSpec

StopReason = Literal["diverged", "non_finite", "plateau", "end"]

#: Batches skipped at each end of the curve when looking for the steepest descent
#: (torch-lr-finder's ``plot(skip_start=10, skip_end=5)``).
SKIP_START = 10
SKIP_END = 5


@dataclass(frozen=True)
class RangeTestResult:
    """The sweep's curve and why it stopped.

    Attributes:
        lrs: LR of each batch that ran.
        losses: Smoothed loss after each batch.
        raw_losses: Loss of each batch.
        stop_reason: ``"diverged"``, ``"non_finite"``, ``"plateau"`` or ``"end"``.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    stop_reason: StopReason

    def min_loss_lr(self) -> float:
        """LR at the minimum of the smoothed loss."""
        index = min(range(len(self.losses)), key=self.losses.__getitem__)
        return self.lrs[index]

    def steepest_lr(self) -> float:
        """LR of the steepest descent of the smoothed loss (torch-lr-finder's suggestion:
        ``np.gradient`` of the loss, skipping 10 batches at the start and 5 at the end)."""
        lrs, losses = self.lrs, self.losses
        if len(losses) > SKIP_START + SKIP_END + 2:
            lrs = lrs[SKIP_START:-SKIP_END]
            losses = losses[SKIP_START:-SKIP_END]
        if len(losses) < 2:
            return lrs[0]
        gradient = _gradient(losses)
        return lrs[min(range(len(gradient)), key=gradient.__getitem__)]

    def suggestion(self, rule: str, divisor: float) -> float:
        """The rule's LR divided by ``divisor``."""
        base = self.min_loss_lr() if rule == "min_loss" else self.steepest_lr()
        return base / divisor

    def to_attrs(self, spec: RangeTestSpec) -> dict[str, Any]:
        """The curve, the candidate LRs and the suggestion, for a study's user attributes."""
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "raw_losses": self.raw_losses,
            "stop_reason": self.stop_reason,
            "min_loss_lr": self.min_loss_lr(),
            "steepest_lr": self.steepest_lr(),
            "rule": spec.rule,
            "divisor": spec.divisor,
            "suggestion": self.suggestion(spec.rule, spec.divisor),
        }


def _gradient(values: list[float]) -> list[float]:
    """``numpy.gradient`` with unit spacing: one-sided at the ends, central inside."""
    n = len(values)
    out = [values[1] - values[0]]
    out += [(values[i + 1] - values[i - 1]) / 2 for i in range(1, n - 1)]
    out.append(values[-1] - values[-2])
    return out


def smooth(raw: list[float], smooth_f: float) -> list[float]:
    """torch-lr-finder's smoothing: ``s_0 = l_0``, ``s_i = f * l_i + (1 - f) * s_{i-1}``."""
    out: list[float] = []
    for value in raw:
        out.append(smooth_step(out[-1] if out else None, value, smooth_f))
    return out


def smooth_step(previous: float | None, value: float, smooth_f: float) -> float:
    """One step of :func:`smooth`: the smoothed loss after ``value``, given the smoothed
    loss before it (``None`` for the first)."""
    if previous is None or smooth_f == 0:
        return value
    return smooth_f * value + (1 - smooth_f) * previous


def stop_reason(losses: list[float], spec: RangeTestSpec) -> StopReason | None:
    """Why the sweep stops after the last of ``losses`` (smoothed), or ``None`` to go on.

    Args:
        losses: The smoothed losses so far.
        spec: The thresholds.

    Returns:
        ``"non_finite"``, ``"diverged"``, ``"plateau"``, ``"end"`` or ``None``.
    """
    last = losses[-1]
    if not math.isfinite(last):
        return "non_finite"
    best = min(losses)
    if last > spec.diverge_th * best:
        return "diverged"
    if spec.plateau_patience and len(losses) > spec.plateau_patience:
        best_index = losses.index(best)
        fell = best <= (1.0 - spec.plateau_drop) * losses[0]
        if fell and len(losses) - 1 - best_index >= spec.plateau_patience:
            return "plateau"
    if len(losses) >= spec.num_iter:
        return "end"
    return None


def run_range_test(
    task: Task,
    splits: Splits,
    config: TrainConfig,
    spec: RangeTestSpec,
    *,
    device: torch.device,
    seed: int,
) -> RangeTestResult:
    """Sweep the LR over the training data of ``task`` with ``config``'s optimizer.

    A fresh model trains one optimizer step per LR of the sweep, on consecutive
    batches of ``config.batch_size`` (reshuffled after each pass; tensors or a
    Dataset, micro-batches with accumulation and mixed precision as in training),
    with the config's gradient clipping and no LR schedule.

    Args:
        task: What to train.
        splits: Its data (only ``train`` is used).
        config: Optimizer, weight decay, batch size, dropout, clipping.
        spec: The sweep and its stops.
        device: Where to train.
        seed: Torch seed of the model and the batch order.

    Returns:
        The curve and why it stopped.
    """
    import torch

    from stagetune.objectives._optim import build_optimizer
    from stagetune.objectives._train import Precision, _Batches, _train_step

    torch.manual_seed(seed)
    batches = _Batches(task, splits.train, config.batch_size, device, seed)
    model = task.build_model(config.model_params).to(device)
    model.train()
    optimizer = build_optimizer(model, replace(config, lr=spec.start_lr))
    precision = Precision(config.amp, device)
    micro = config.micro_batch_size
    stream = _endless(batches)

    def step(lr: float) -> float:
        x, y = next(stream)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _train_step(task, model, model, precision, optimizer, x, y, micro, config)
        return float(loss.item())

    return sweep(step, spec)


def sweep(step: Callable[[float], float], spec: RangeTestSpec) -> RangeTestResult:
    """Drive ``step`` through the LRs of ``spec``'s sweep until one of its stops.

    The sweep of :func:`run_range_test`, for any training loop: ``step(lr)`` trains
    one optimizer step at ``lr`` on the next batch and returns that batch's loss.

    Args:
        step: One optimizer step at the given LR; returns the batch's loss.
        spec: The sweep and its stops.

    Returns:
        The curve and why it stopped.

    Example:
        >>> from stagetune.spaces import RangeTestSpec
        >>> sweep(lambda lr: 1.0 / (1 + lr), RangeTestSpec(num_iter=5)).stop_reason
        'end'
    """
    lrs: list[float] = []
    raw: list[float] = []
    losses: list[float] = []
    reason: StopReason = "end"
    for lr in spec.lrs():
        value = float(step(lr))
        lrs.append(lr)
        raw.append(value)
        losses.append(smooth_step(losses[-1] if losses else None, value, spec.smooth_f))
        stop = stop_reason(losses, spec)
        if stop is not None:
            reason = stop
            break
    if reason == "non_finite":
        # Keep the curve finite for plots and JSON; the stop reason says why it ended.
        lrs, raw, losses = lrs[:-1] or lrs, raw[:-1] or [math.inf], losses[:-1] or [math.inf]
    return RangeTestResult(lrs=lrs, losses=losses, raw_losses=raw, stop_reason=reason)


def _endless(batches: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Batches of pass after pass (each pass in a fresh order)."""
    while True:
        yield from batches


@dataclass
class RangeTestObjective:
    """Stage 0 as an Optuna objective: one range test, the LR it suggests as the trial's
    ``lr`` (clipped to ``clip``), the curve and the window in user attributes.

    Args:
        task: What to train.
        clip: The optimizer's guide range of ``lr``; the suggestion is clipped to it and
            the LR stage's window lies inside it.
        spec: The sweep and the rule.
        carried: Parameters fixed by earlier stages (fixed by the stage's sampler).
        defaults: Every other parameter.
        device: Where to train; CUDA when available by default.
        seed: The sweep of trial ``n`` uses seed ``seed + n``.

    The trial's value is the minimum of the smoothed loss.
    """

    task: Task
    clip: FloatParam
    spec: RangeTestSpec
    carried: tuple[Param, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    device: torch.device | None = None
    seed: int = 0

    def __call__(self, trial: optuna.Trial) -> float:
        from stagetune.objectives._config import TrainConfig
        from stagetune.objectives._objective import suggest
        from stagetune.objectives._train import default_device
        from stagetune.spaces import narrow_lr_range

        params = dict(self.defaults)
        for param in self.carried:
            params[param.name] = suggest(trial, param)
        config = TrainConfig.from_params(params)
        trial.set_user_attr(TrialAttr.CONFIG, dict(sorted(params.items())))
        result = self.measure(
            params, config, device=self.device or default_device(), seed=self.seed + trial.number
        )
        attrs = result.to_attrs(self.spec)
        window = narrow_lr_range(
            attrs["suggestion"], self.clip.low, self.clip.high, window=self.spec.window
        )
        attrs["window"] = [window.low, window.high]
        attrs["clip"] = [self.clip.low, self.clip.high]
        attrs["clipped"] = window.clipped
        trial.set_user_attr(TrialAttr.RANGE_TEST, attrs)
        # The trial's lr is the (clipped) suggestion: a one-point distribution, so that
        # the value is recorded as a parameter and carried forward like any best value.
        trial.suggest_float("lr", window.suggestion, window.suggestion, log=True)
        return min(result.losses)

    def measure(
        self, params: Mapping[str, Any], config: TrainConfig, *, device: torch.device, seed: int
    ) -> RangeTestResult:
        """Run the sweep of one trial (the task's model and data)."""
        from stagetune.objectives._tasks import load_splits

        return run_range_test(
            self.task, load_splits(self.task), config, self.spec, device=device, seed=seed
        )
