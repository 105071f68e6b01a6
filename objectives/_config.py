"""The hyperparameters one trial trains with, validated before training starts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from stagetune.spaces import PLATEAU_PATIENCE, SCHEDULER_ETA_MIN

OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd", "adafactor", "rmsprop")
SCHEDULERS: tuple[str, ...] = (
    "cosine",
    "cosine_warmup",
    "onecycle",
    "plateau",
    "multistep",
    "constant",
)


class ConfigError(ValueError):
    """A hyperparameter value a trial cannot train with."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop reads; the rest goes to the model builder.

    Args:
        optimizer: ``"adamw"`` (decoupled weight decay), ``"adam"``, ``"sgd"``
            (with ``momentum`` and Nesterov), ``"adafactor"`` (``torch.optim.Adafactor``)
            or ``"rmsprop"`` (``torch.optim.RMSprop``, L2 weight decay as Adam's).
        lr: Peak learning rate (OneCycleLR's ``max_lr``).
        weight_decay: Decay of weights; biases and norm weights never decay.
        batch_size: Examples per optimizer step.
        scheduler: ``"cosine"`` (CosineAnnealingLR per step to ``eta_min``),
            ``"cosine_warmup"`` (linear warmup, then cosine to 0), ``"onecycle"``
            (OneCycleLR, ``max_lr=lr``), ``"plateau"`` (ReduceLROnPlateau on the
            validation loss, stepped once per epoch), ``"multistep"`` (MultiStepLR at
            ``milestones``) or ``"constant"``.
        warmup_fraction: Fraction of all steps spent warming up (cosine_warmup).
        warmup_steps: Warmup in optimizer steps (the guide's recipes count steps);
            when set it replaces ``warmup_fraction``; at most 10% of the run warms up
            (``MAX_WARMUP_SHARE``).
        grad_clip: Max global gradient norm, or ``None`` for no clipping.
        dropout: Passed to the model builder as ``dropout``.
        eta_min: The cosine schedule's final LR (the guide's ``eta_min=1e-6``).
        accumulation_steps: Gradient accumulation: each optimizer step sums the
            gradients of micro-batches of ``ceil(batch_size / accumulation_steps)``
            examples; ``batch_size`` stays the effective batch. Each micro-batch's
            loss is weighted by its share of the batch (``1 / accumulation_steps``
            when they are equal, the guide's loop), so the step's gradient is the
            full batch's.
        early_stopping_patience: Stop when the validation metric has not improved
            for this many epochs (``None``: train every epoch).
        amp: Mixed precision on CUDA (bf16 where the GPU supports it, else fp16
            with a gradient scaler); no effect on the CPU.
        compile: Train a ``torch.compile``-d model (slow to start; pays off on
            long trials on a GPU).
        momentum: SGD momentum (the guide: 0.9, with Nesterov).
        nesterov: Nesterov momentum for SGD.
        beta1: Adam/AdamW first-moment decay.
        beta2: Adam/AdamW second-moment decay (GPT-style pretraining: 0.95).
        milestones: MultiStepLR milestones as fractions of the run, e.g. the ResNet-50
            recipe's epochs 30, 60, 90 of 90 are ``(1/3, 2/3, 1.0)``.
        gamma: MultiStepLR's decay factor at each milestone.
        plateau_patience: ReduceLROnPlateau's patience in epochs (the guide: 5-10).
        plateau_factor: ReduceLROnPlateau's decay factor.
        max_micro_batch: The largest micro-batch that fits in memory: a larger
            ``batch_size`` gets the accumulation steps that keep it the effective
            batch (``stagetune.spaces.micro_batching``); ``None``: no limit.
        model: Other parameters, passed to the model builder.

    Example:
        >>> TrainConfig.from_params({"lr": 1e-3, "hidden": 64}).model
        {'hidden': 64}
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    scheduler: str = "cosine"
    warmup_fraction: float = 0.0
    grad_clip: float | None = None
    dropout: float = 0.0
    eta_min: float = SCHEDULER_ETA_MIN
    accumulation_steps: int = 1
    early_stopping_patience: int | None = None
    amp: bool = True
    compile: bool = False
    warmup_steps: int | None = None
    momentum: float = 0.9
    nesterov: bool = True
    beta1: float = 0.9
    beta2: float = 0.999
    milestones: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)
    gamma: float = 0.1
    plateau_patience: int = PLATEAU_PATIENCE[0]  # the lower end: search trials are short
    plateau_factor: float = 0.1
    max_micro_batch: int | None = None
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {OPTIMIZERS}, but got {self.optimizer!r}."
            )
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(
                f"scheduler must be one of {SCHEDULERS}, but got {self.scheduler!r}."
            )
        _positive("lr", self.lr)
        _positive("batch_size", self.batch_size)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool):
            raise ConfigError(f"batch_size must be an integer, but got {self.batch_size!r}.")
        _in_range("weight_decay", self.weight_decay, 0.0, math.inf)
        _in_range("warmup_fraction", self.warmup_fraction, 0.0, 1.0)
        _in_range("dropout", self.dropout, 0.0, 1.0)
        _in_range("eta_min", self.eta_min, 0.0, math.inf)
        if self.grad_clip is not None:
            _positive("grad_clip", self.grad_clip)
        _integer("accumulation_steps", self.accumulation_steps, minimum=1)
        self._fit_micro_batch()
        if self.accumulation_steps > self.batch_size:
            raise ConfigError(
                f"accumulation_steps must be at most batch_size ({self.batch_size}), "
                f"but got {self.accumulation_steps}."
            )
        if self.early_stopping_patience is not None:
            _integer("early_stopping_patience", self.early_stopping_patience, minimum=1)
        for flag in ("amp", "compile"):
            value = getattr(self, flag)
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be true or false, but got {value!r}.")
        if self.warmup_steps is not None:
            _integer("warmup_steps", self.warmup_steps, minimum=0)
        _in_range("momentum", self.momentum, 0.0, 1.0)
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"nesterov must be true or false, but got {self.nesterov!r}.")
        _in_range("beta1", self.beta1, 0.0, 1.0)
        _in_range("beta2", self.beta2, 0.0, 1.0)
        self._check_milestones()
        _in_range("gamma", self.gamma, 0.0, 1.0)
        _integer("plateau_patience", self.plateau_patience, minimum=0)
        _in_range("plateau_factor", self.plateau_factor, 0.0, 1.0)

    def _fit_micro_batch(self) -> None:
        if self.max_micro_batch is None:
            return
        _integer("max_micro_batch", self.max_micro_batch, minimum=1)
        from stagetune.spaces import micro_batching

        _, steps = micro_batching(self.batch_size, self.max_micro_batch)
        if steps > self.accumulation_steps:
            object.__setattr__(self, "accumulation_steps", steps)

    def _check_milestones(self) -> None:
        milestones = self.milestones
        if isinstance(milestones, list):
            milestones = tuple(milestones)
            object.__setattr__(self, "milestones", milestones)
        if not isinstance(milestones, tuple) or not milestones:
            raise ConfigError(
                f"milestones must be a non-empty list of fractions of the run, "
                f"but got {milestones!r}."
            )
        for value in milestones:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"milestones must be numbers, but got {milestones!r}.")
            if not 0.0 < value <= 1.0:
                raise ConfigError(
                    f"milestones are fractions of the run in (0, 1] (epoch 30 of 90 is "
                    f"{1 / 3:.4f}), but got {milestones!r}."
                )
        if list(milestones) != sorted(milestones):
            raise ConfigError(f"milestones must increase, but got {milestones!r}.")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """Split a flat parameter dict into the loop's settings and the model's."""
        names = {f.name for f in fields(cls)} - {"model"}
        own = {k: v for k, v in params.items() if k in names}
        if own.get("grad_clip") in (0, 0.0):
            own["grad_clip"] = None
        model = {k: v for k, v in params.items() if k not in names}
        return cls(**own, model=model)

    @property
    def micro_batch_size(self) -> int:
        """Examples per forward/backward pass: ``ceil(batch_size / accumulation_steps)``."""
        return math.ceil(self.batch_size / self.accumulation_steps)

    def with_half_micro_batch(self) -> TrainConfig | None:
        """The same effective batch with twice the accumulation (half the micro-batch).

        Returns:
            The new config, or ``None`` when the micro-batch is already 1 example.

        Example:
            >>> TrainConfig(batch_size=64).with_half_micro_batch().micro_batch_size
            32
        """
        if self.micro_batch_size <= 1:
            return None
        steps = min(self.batch_size, 2 * self.accumulation_steps)
        return dataclasses.replace(self, accumulation_steps=steps)

    @property
    def model_params(self) -> dict[str, Any]:
        """What the model builder receives: the extra parameters plus ``dropout``."""
        return {**self.model, "dropout": self.dropout}


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, but got {value!r}.")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, but got {value!r}.")


def _integer(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, but got {value!r}.")


def _in_range(name: str, value: Any, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], but got {value!r}.")
