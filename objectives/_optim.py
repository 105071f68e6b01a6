"""Optimizers with decay/no-decay groups, and per-step LR schedules."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from objectives._config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and biases and norm weights that don't.

    The guide's ``no_decay = ['bias', 'LayerNorm.weight']`` in its general form:
    every parameter with fewer than two dimensions (biases, and the weights of
    LayerNorm, BatchNorm and GroupNorm) is excluded from weight decay.
    """
    decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    import torch

    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A scheduler stepped once per optimizer step, or ``None`` for a constant LR."""
    import torch

    if config.scheduler == "constant":
        return None
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=min(config.eta_min, config.lr)
        )
    warmup = int(config.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        # 1) linear warmup from 0 to the peak LR
        if step < warmup:
            return (step + 1) / warmup
        # 2) cosine decay from the peak LR to 0 at the last step
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
