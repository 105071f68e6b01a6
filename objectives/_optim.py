"""Optimizers with decay/no-decay groups, and the guide's LR schedules.

Every schedule here is stepped once per optimizer step, except ReduceLROnPlateau,
which the training loop steps once per epoch with the validation loss (see
:func:`steps_per_epoch_only`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from stagetune.objectives._config import TrainConfig

#: The most of a run that warmup may take when it is given in steps: the guide's
#: step counts (2,000 - 10,000) are for runs of 100k+ steps; on a shorter run they
#: are cut to 10% of it, the upper end of the guide's "Cosine + Warmup:
#: num_warmup_steps=6-10%".
MAX_WARMUP_SHARE = 0.1

Scheduler = Any  # torch.optim.lr_scheduler.LRScheduler | ReduceLROnPlateau


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and biases and norm weights that don't.

    The guide's ``no_decay = ['bias', 'LayerNorm.weight']`` in its general form:
    every parameter with fewer than two dimensions (biases, and the weights of
    LayerNorm, BatchNorm and GroupNorm) is excluded from weight decay.

    Args:
        model: The model whose trainable parameters are grouped.
        weight_decay: Decay of the first group.

    Returns:
        ``[{"params": decaying, "weight_decay": weight_decay},
        {"params": others, "weight_decay": 0.0}]``.
    """
    decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over ``model``'s decay/no-decay groups.

    SGD uses the guide's momentum 0.9 with Nesterov (``config.momentum``,
    ``config.nesterov``); AdamW and Adafactor decay weights decoupled from the
    gradient; Adam and RMSprop add ``weight_decay`` to the gradient (L2), as torch does.
    RMSprop takes torch's own settings otherwise (``alpha=0.99``, no momentum): the
    guide names it ("Reinforcement learning: Adam or RMSProp") without settings.
    """
    import torch

    groups = param_groups(model, config.weight_decay)
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas)
    if config.optimizer == "adafactor":
        return torch.optim.Adafactor(groups, lr=config.lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr)
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
    )


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """Optimizer steps of linear warmup: ``warmup_steps`` if set, else the fraction."""
    if config.warmup_steps is not None:
        return min(config.warmup_steps, int(MAX_WARMUP_SHARE * total_steps))
    return int(config.warmup_fraction * total_steps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> Scheduler | None:
    """The LR schedule of ``config`` over ``total_steps`` optimizer steps.

    Args:
        optimizer: The optimizer whose LR is scheduled (``lr`` is the peak).
        config: ``scheduler`` and its settings.
        total_steps: Optimizer steps in the whole run.

    Returns:
        A scheduler, or ``None`` for a constant LR. ReduceLROnPlateau is stepped
        once per epoch with the validation loss; every other one once per step.
    """
    import torch

    schedulers = torch.optim.lr_scheduler
    total_steps = max(1, total_steps)
    if config.scheduler == "constant":
        return None
    if config.scheduler == "cosine":
        # CosineAnnealingLR with T_max = the run (the guide's T_max=num_epochs, per step).
        return schedulers.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=min(config.eta_min, config.lr)
        )
    if config.scheduler == "onecycle":
        # max_lr is the LR the range test / LR stage found. Momentum (or Adam's beta1) is
        # cycled only where the optimizer uses it: cycling RMSprop's or plain SGD's
        # momentum of 0 would switch momentum on.
        defaults = optimizer.defaults
        cycle_momentum = "betas" in defaults or defaults.get("momentum", 0) > 0
        return schedulers.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, cycle_momentum=cycle_momentum
        )
    if config.scheduler == "plateau":
        return schedulers.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.scheduler == "multistep":
        milestones = sorted({max(1, round(f * total_steps)) for f in config.milestones})
        return schedulers.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    warmup = warmup_steps(config, total_steps)
    return schedulers.LambdaLR(optimizer, _warmup_cosine(warmup, total_steps))


def _warmup_cosine(warmup: int, total_steps: int) -> Any:
    def factor(step: int) -> float:
        # 1) linear warmup from 0 to the peak LR
        if step < warmup:
            return (step + 1) / warmup
        # 2) cosine decay from the peak LR to 0 at the last step
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def steps_per_epoch_only(scheduler: object) -> bool:
    """Whether ``scheduler`` is stepped once per epoch with the validation loss."""
    import torch

    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
