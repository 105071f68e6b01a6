"""The LR range test as data: its sweep, its suggestion rule and the narrowing rule.

"Learning Rate / The LR Range Test": increase LR exponentially from 1e-7 to 10
over ~100 batches, plot loss vs LR, "use ~1/3 to 1/10 of the LR at minimum loss
as your starting LR"; "Practical Tuning Strategy / Step 2": "Set LR to ~1/5 of
the point of steepest descent". The two rules disagree; ``DEFAULT_RULE`` is
chosen on the evidence in ``benchmarks/lr_range_test.py`` (see README,
"LR range test"), and the choice is tested in tests/spaces_tests/test_range.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from stagetune.spaces._params import SpaceError

RangeTestRule = Literal["min_loss", "steepest"]
RANGE_TEST_RULES: tuple[str, ...] = ("min_loss", "steepest")
RANGE_TEST_SOURCE = "Learning Rate / The LR Range Test"

#: The rule, the divisor and the window chosen on the benchmark's evidence: the
#: LR at the minimum of the smoothed loss, divided by 10 (the guide's "1/3 to
#: 1/10 of the LR at minimum loss", its conservative end), and a +-10x window
#: around it for the LR stage.
DEFAULT_RULE: RangeTestRule = "min_loss"
DEFAULT_DIVISOR = 10.0
DEFAULT_WINDOW = 10.0


@dataclass(frozen=True)
class RangeTestSpec:
    """How stage 0 sweeps the LR and what it makes of the curve.

    Args:
        start_lr: First LR of the exponential sweep (the guide: 1e-7).
        end_lr: Last LR of the sweep (the guide: 10).
        num_iter: Batches in the sweep, one optimizer step each (the guide: ~100).
        smooth_f: Exponential smoothing of the loss, torch-lr-finder's ``smooth_f``.
        diverge_th: Stop when the smoothed loss exceeds ``diverge_th`` times its
            minimum (torch-lr-finder's ``diverge_th``, default 5).
        plateau_patience: Also stop when the smoothed loss has made no new minimum
            for this many batches after it fell by ``plateau_drop`` from its start
            (the loss often flattens instead of exploding); ``0`` turns this off.
        plateau_drop: The fall (a fraction of the first loss) that must have
            happened before a plateau can end the sweep, so that the flat start at
            tiny LRs never does.
        rule: ``"min_loss"`` (LR at the smoothed loss's minimum) or ``"steepest"``
            (LR of the steepest descent of the smoothed loss, torch-lr-finder's
            suggestion).
        divisor: The suggestion is the rule's LR divided by this (guide: 3-10 for
            min_loss, ~5 for steepest).
        window: The LR stage searches ``[suggestion / window, suggestion * window]``,
            clipped to the optimizer's guide range; ``1`` keeps the guide range.
        narrow: Whether later stages that search ``lr`` get the narrowed range.

    Example:
        >>> RangeTestSpec().lrs()[0], RangeTestSpec().lrs()[-1]
        (1e-07, 10.0)
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_iter: int = 100
    smooth_f: float = 0.05
    diverge_th: float = 5.0
    plateau_patience: int = 20
    plateau_drop: float = 0.05
    rule: RangeTestRule = DEFAULT_RULE
    divisor: float = DEFAULT_DIVISOR
    window: float = DEFAULT_WINDOW
    narrow: bool = True

    def __post_init__(self) -> None:
        for name in ("start_lr", "end_lr", "diverge_th", "divisor", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SpaceError(f"range_test: {name} must be a positive number, got {value!r}.")
        if not self.start_lr < self.end_lr:
            raise SpaceError(
                f"range_test: start_lr must be less than end_lr, but got "
                f"start_lr={self.start_lr!r}, end_lr={self.end_lr!r}."
            )
        for name, minimum in (("num_iter", 2), ("plateau_patience", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SpaceError(
                    f"range_test: {name} must be an integer >= {minimum}, got {value!r}."
                )
        if not 0.0 <= self.smooth_f < 1.0:
            raise SpaceError(f"range_test: smooth_f must be in [0, 1), got {self.smooth_f!r}.")
        if not 0.0 <= self.plateau_drop < 1.0:
            raise SpaceError(
                f"range_test: plateau_drop must be in [0, 1), got {self.plateau_drop!r}."
            )
        if self.diverge_th <= 1.0:
            raise SpaceError(f"range_test: diverge_th must be > 1, got {self.diverge_th!r}.")
        if self.window < 1.0:
            raise SpaceError(f"range_test: window must be >= 1, got {self.window!r}.")
        if self.rule not in RANGE_TEST_RULES:
            raise SpaceError(
                f"range_test: unknown rule {self.rule!r}; allowed: {RANGE_TEST_RULES}."
            )
        if not isinstance(self.narrow, bool):
            raise SpaceError(f"range_test: narrow must be true or false, got {self.narrow!r}.")

    def lrs(self) -> list[float]:
        """The sweep's LR at each batch: exponential from ``start_lr`` to ``end_lr``."""
        ratio = self.end_lr / self.start_lr
        last = self.num_iter - 1
        return [
            self.end_lr if i == last else self.start_lr * ratio ** (i / last)
            for i in range(self.num_iter)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "num_iter": self.num_iter,
            "smooth_f": self.smooth_f,
            "diverge_th": self.diverge_th,
            "plateau_patience": self.plateau_patience,
            "plateau_drop": self.plateau_drop,
            "rule": self.rule,
            "divisor": self.divisor,
            "window": self.window,
            "narrow": self.narrow,
        }


@dataclass(frozen=True)
class LrWindow:
    """The LR range a stage searches after the range test, and how it was made.

    Attributes:
        low, high: The narrowed range.
        suggestion: The range test's suggestion, clipped into ``[low, high]``.
        raw_suggestion: The suggestion before clipping.
        clipped: Whether the suggestion lay outside the guide range.
    """

    low: float
    high: float
    suggestion: float
    raw_suggestion: float
    clipped: bool


def narrow_lr_range(suggestion: float, low: float, high: float, *, window: float) -> LrWindow:
    """The narrowing rule: ``suggestion / window`` to ``suggestion * window``, inside the
    optimizer's guide range ``[low, high]``.

    The suggestion is first clipped into the guide range (the range test is one
    noisy run; the guide's table is the prior), so the window is never empty and
    always contains the clipped suggestion.

    Args:
        suggestion: The range test's suggested LR.
        low, high: The optimizer's guide search range.
        window: Factor on each side (``>= 1``); ``1`` gives the guide range unchanged.

    Returns:
        The window.

    Example:
        >>> w = narrow_lr_range(3e-3, 1e-4, 1e-2, window=10.0)
        >>> (w.low, w.high)
        (0.0003, 0.01)
    """
    if not 0 < low < high:
        raise SpaceError(f"lr range must have 0 < low < high, but got low={low!r}, high={high!r}.")
    if not (isinstance(suggestion, (int, float)) and math.isfinite(suggestion) and suggestion > 0):
        raise SpaceError(f"A range-test suggestion must be a positive LR, got {suggestion!r}.")
    if window < 1.0:
        raise SpaceError(f"window must be >= 1, but got {window!r}.")
    clipped = min(max(suggestion, low), high)
    if window == 1.0:
        return LrWindow(low, high, clipped, suggestion, clipped != suggestion)
    window_low = max(low, clipped / window)
    window_high = min(high, clipped * window)
    return LrWindow(
        _round(window_low), _round(window_high), clipped, suggestion, clipped != suggestion
    )


def _round(value: float) -> float:
    """Four significant digits: ranges stay readable in the dashboard and TOML."""
    return float(f"{value:.4g}")
