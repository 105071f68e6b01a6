"""Batch size and LR, coupled: the linear scaling rule and gradient accumulation."""

from __future__ import annotations

import pytest

from stagetune.spaces import SpaceError, micro_batching, scale_lr
from stagetune.spaces._guide import LINEAR_SCALING


def test_the_guides_example_4x_batch_gives_4x_lr() -> None:
    rule = LINEAR_SCALING
    scaled = scale_lr(rule.example_lr, rule.example_scaled_batch, rule.example_batch)
    assert scaled.lr == pytest.approx(rule.example_scaled_lr)
    assert scaled.factor == 4.0 and not scaled.beyond_limit


def test_scaling_down_and_past_the_limit() -> None:
    assert scale_lr(0.1, 64, 256).lr == pytest.approx(0.025)
    assert not scale_lr(0.1, 4096, 256).beyond_limit
    past = scale_lr(0.1, 8192, 256)
    assert past.beyond_limit and past.lr == pytest.approx(3.2)
    assert "LAMB or warmup" in past.warning(8192)
    with pytest.raises(SpaceError, match="batch_size must be a positive integer"):
        scale_lr(0.1, 0, 256)


@pytest.mark.parametrize(
    ("batch", "limit", "expected"),
    [
        (64, None, (64, 1)),
        (64, 64, (64, 1)),
        (256, 64, (64, 4)),
        (100, 64, (50, 2)),
        (7, 3, (3, 3)),
    ],
)
def test_micro_batching_keeps_the_effective_batch(
    batch: int, limit: int | None, expected: tuple[int, int]
) -> None:
    micro, steps = micro_batching(batch, limit)
    assert (micro, steps) == expected
    assert micro * steps >= batch and micro * (steps - 1) < batch
    if limit is not None:
        assert micro <= limit


def test_accumulated_micro_batches_give_the_gradient_of_one_batch() -> None:
    """The guide's loop: each micro-batch loss divided by the accumulation steps."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(96, 8), torch.randint(0, 3, (96,))
    loss_fn = nn.CrossEntropyLoss()

    model.zero_grad()
    loss_fn(model(x), y).backward()
    whole = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]

    micro, steps = micro_batching(96, 32)
    model.zero_grad()
    for chunk_x, chunk_y in zip(x.split(micro), y.split(micro), strict=True):
        (loss_fn(model(chunk_x), chunk_y) / steps).backward()
    accumulated = [p.grad for p in model.parameters()]
    for a, b in zip(whole, accumulated, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
