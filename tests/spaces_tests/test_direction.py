"""Step 4: a regularizer's range cut to the side the fit diagnosis asks for."""

from __future__ import annotations

from stagetune.spaces import CategoricalParam, FloatParam, IntParam, range_edge
from stagetune.spaces._direction import directed_param


def test_overfitting_searches_more_dropout_and_underfitting_less() -> None:
    dropout = FloatParam("dropout", 0.0, 0.5, source="Dropout Rate")
    more = directed_param(dropout, 0.3, +1)
    less = directed_param(dropout, 0.3, -1)
    assert (more.low, more.high) == (0.3, 0.5)  # type: ignore[union-attr]
    assert (less.low, less.high) == (0.0, 0.3)  # type: ignore[union-attr]
    assert "Step 4" in more.source  # type: ignore[union-attr]
    assert directed_param(dropout, 0.3, 0) is dropout


def test_weight_decay_on_a_log_scale_and_batch_size_the_other_way() -> None:
    wd = FloatParam("weight_decay", 1e-5, 1e-2, log=True)
    cut = directed_param(wd, 1e-4, +1)
    assert (cut.low, cut.high, cut.log) == (1e-4, 1e-2, True)  # type: ignore[union-attr]
    # Smaller batches regularize more ("Small batch sizes act as implicit regularization").
    batch = CategoricalParam("batch_size", (16, 32, 64, 128))
    assert directed_param(batch, 64, +1).choices == (16, 32, 64)  # type: ignore[union-attr]
    assert directed_param(batch, 64, -1).choices == (64, 128)  # type: ignore[union-attr]
    ints = IntParam("batch_size", 16, 128)
    assert (directed_param(ints, 64, +1).low, directed_param(ints, 64, +1).high) == (16, 64)  # type: ignore[union-attr]


def test_nothing_left_on_that_side_and_non_regularizers() -> None:
    dropout = FloatParam("dropout", 0.0, 0.5)
    assert directed_param(dropout, 0.0, -1) is None
    assert directed_param(dropout, 0.5, +1) is None
    # a current value outside the range is clipped into it first
    cut = directed_param(dropout, 0.9, -1)
    assert (cut.low, cut.high) == (0.0, 0.5)  # type: ignore[union-attr]
    hidden = IntParam("hidden", 32, 256)
    assert directed_param(hidden, 64, +1) is hidden


def test_a_value_at_an_end_of_its_range_is_at_that_edge() -> None:
    lr = FloatParam("lr", 1e-3, 0.1, log=True)
    assert range_edge(lr, 0.1) == "high"
    assert range_edge(lr, 0.08) == "high"  # log scale: 95% of the way from 1e-3
    assert range_edge(lr, 0.05) is None
    assert range_edge(lr, 1.1e-3) == "low"
    assert range_edge(lr, "0.1") is None
    dropout = FloatParam("dropout", 0.0, 0.5)
    assert range_edge(dropout, 0.0) is None  # no dropout: as far as the range goes
    assert range_edge(dropout, 0.49) == "high"
    assert range_edge(FloatParam("x", -1.0, 1.0), -0.95) == "low"
    assert range_edge(IntParam("layers", 1, 21), 20) == "high"
    assert range_edge(CategoricalParam("batch_size", (32, 64)), 64) is None
