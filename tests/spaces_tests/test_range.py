"""The range test's sweep, and the rule that narrows the LR stage around its suggestion."""

from __future__ import annotations

import itertools
import math

import pytest

from stagetune.spaces import RangeTestSpec, SpaceError, narrow_lr_range
from stagetune.spaces import _range as rng
from stagetune.spaces._guide import LEARNING_RATE


def test_the_sweep_is_exponential_from_1e_7_to_10_over_100_batches() -> None:
    lrs = RangeTestSpec().lrs()
    assert len(lrs) == 100
    assert lrs[0] == 1e-7 and lrs[-1] == 10.0
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert max(ratios) == pytest.approx(min(ratios))
    assert ratios[0] == pytest.approx(1e8 ** (1 / 99))


def test_the_rule_chosen_on_evidence_is_min_loss_over_10_with_a_10x_window() -> None:
    spec = RangeTestSpec()
    assert (spec.rule, spec.divisor, spec.window) == ("min_loss", 10.0, 10.0)
    assert (spec.smooth_f, spec.diverge_th) == (0.05, 5.0)  # torch-lr-finder's defaults
    assert spec.plateau_patience > 0 and spec.narrow


def test_narrowing_is_a_10x_window_inside_the_guide_range() -> None:
    row = LEARNING_RATE["adamw_scratch"]
    window = narrow_lr_range(3e-3, row.search_low, row.search_high, window=10.0)
    assert (window.low, window.high) == (3e-4, 3e-2)
    assert window.suggestion == 3e-3 and not window.clipped
    # Near an end, the window is cut at the guide range.
    window = narrow_lr_range(1e-2, row.search_low, row.search_high, window=10.0)
    assert (window.low, window.high) == (1e-3, 3e-2)


@pytest.mark.parametrize("suggestion", [1e-9, 5.0])
def test_a_suggestion_outside_the_guide_range_is_clipped_first(suggestion: float) -> None:
    window = narrow_lr_range(suggestion, 1e-4, 1e-2, window=10.0)
    assert window.clipped and window.raw_suggestion == suggestion
    assert window.low <= window.suggestion <= window.high
    assert window.suggestion in (1e-4, 1e-2)
    assert window.high / window.low == pytest.approx(10.0)


@pytest.mark.parametrize("suggestion", [1.3e-4, 7.7e-4, 2.2e-3, 9.1e-3, 2.9e-2])
def test_the_window_always_holds_the_suggestion_and_never_leaves_the_guide_range(
    suggestion: float,
) -> None:
    window = narrow_lr_range(suggestion, 1e-4, 3e-2, window=10.0)
    assert 1e-4 <= window.low <= window.suggestion <= window.high <= 3e-2
    assert math.log10(window.high / window.low) <= 2 + 1e-9


def test_window_one_keeps_the_guide_range() -> None:
    window = narrow_lr_range(3e-3, 1e-4, 1e-2, window=1.0)
    assert (window.low, window.high) == (1e-4, 1e-2)


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(SpaceError, match="range_test: start_lr must be less than end_lr"):
        RangeTestSpec(start_lr=1.0, end_lr=0.1)
    with pytest.raises(SpaceError, match="range_test: unknown rule 'valley'"):
        RangeTestSpec(rule="valley")  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match="range_test: num_iter must be an integer >= 2"):
        RangeTestSpec(num_iter=1)
    with pytest.raises(SpaceError, match="range_test: smooth_f must be in"):
        RangeTestSpec(smooth_f=1.0)
    with pytest.raises(SpaceError, match="window must be >= 1"):
        RangeTestSpec(window=0.5)
    assert rng.RANGE_TEST_RULES == ("min_loss", "steepest")
