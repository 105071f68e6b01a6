"""Batch size and LR, coupled: the linear scaling rule and gradient accumulation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stagetune.spaces._guide import LINEAR_SCALING
from stagetune.spaces._params import SpaceError


@dataclass(frozen=True)
class ScaledLr:
    """An LR scaled to a batch size by the linear scaling rule.

    Attributes:
        lr: The LR to train with.
        factor: ``batch_size / reference_batch``.
        beyond_limit: The batch is past the rule's limit (~4k-8k), where the guide
            says it "breaks down" and to "use LAMB or warmup to stabilize".
    """

    lr: float
    factor: float
    beyond_limit: bool

    def warning(self, batch_size: int) -> str:
        return (
            f"batch_size={batch_size} is past the linear scaling rule's limit "
            f"(~{LINEAR_SCALING.limit_low}-{LINEAR_SCALING.limit_high}): the LR was still "
            f"scaled x{self.factor:g}; {LINEAR_SCALING.beyond_limit}"
        )


def scale_lr(lr: float, batch_size: int, reference_batch: int) -> ScaledLr:
    """The linear scaling rule: "When you multiply batch size by k, multiply LR by k."

    Args:
        lr: The LR tuned at ``reference_batch``.
        batch_size: The batch size to train with.
        reference_batch: The batch size ``lr`` belongs to.

    Returns:
        The scaled LR; ``beyond_limit`` from a batch above 4096 (the limit's lower end).

    Example:
        >>> scale_lr(0.01, 128, 32).lr   # the guide's example: 4x batch -> 4x lr
        0.04
    """
    for name, value in (("batch_size", batch_size), ("reference_batch", reference_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpaceError(f"{name} must be a positive integer, but got {value!r}.")
    factor = batch_size / reference_batch
    return ScaledLr(lr * factor, factor, batch_size > LINEAR_SCALING.limit_low)


def micro_batching(batch_size: int, max_micro_batch: int | None) -> tuple[int, int]:
    """Micro-batch and accumulation steps that keep ``batch_size`` as the effective batch.

    Follows the guide's gradient accumulation: ``accumulation_steps`` micro-batches of
    at most ``max_micro_batch`` rows, each loss divided by the number of micro-batches,
    one optimizer step per ``batch_size`` rows.

    Args:
        batch_size: The effective batch (what the plan tunes).
        max_micro_batch: The largest batch that fits in memory, or ``None``: no limit.

    Returns:
        ``(micro_batch, accumulation_steps)``, with ``micro_batch * accumulation_steps``
        at least ``batch_size`` and ``micro_batch = ceil(batch_size / accumulation_steps)``.

    Example:
        >>> micro_batching(256, 64)
        (64, 4)
        >>> micro_batching(100, 64)
        (50, 2)
    """
    if max_micro_batch is None or batch_size <= max_micro_batch:
        return batch_size, 1
    if max_micro_batch < 1:
        raise SpaceError(f"max_micro_batch must be >= 1, but got {max_micro_batch!r}.")
    steps = math.ceil(batch_size / max_micro_batch)
    return math.ceil(batch_size / steps), steps
