from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from stagetune.spaces import CategoricalParam, FloatParam, IntParam, SpaceError, param_from_dict


def test_float_param_distribution() -> None:
    assert FloatParam("lr", 1e-4, 1e-2, log=True).distribution() == FloatDistribution(
        1e-4, 1e-2, log=True
    )


@pytest.mark.parametrize(("low", "high"), [(1e-2, 1e-4), (0.1, 0.1)])
def test_low_not_below_high_fails_naming_parameter_and_values(low: float, high: float) -> None:
    with pytest.raises(SpaceError, match=rf"lr: low must be less than high.*low={low!r}"):
        FloatParam("lr", low, high, log=True)


@pytest.mark.parametrize("low", [0.0, -1e-3])
def test_log_range_needs_positive_low(low: float) -> None:
    with pytest.raises(SpaceError, match=rf"weight_decay: a log range needs low > 0.*{low!r}"):
        FloatParam("weight_decay", low, 0.1, log=True)


def test_int_param_validates() -> None:
    assert IntParam("batch_size", 16, 256, log=True).distribution() == IntDistribution(
        16, 256, log=True
    )
    with pytest.raises(SpaceError, match="batch_size: a log range needs low > 0"):
        IntParam("batch_size", 0, 256, log=True)
    with pytest.raises(SpaceError, match="batch_size: low must be an integer"):
        IntParam("batch_size", 1.5, 256)  # type: ignore[arg-type]


def test_categorical_param() -> None:
    param = CategoricalParam("weight_decay", (1e-5, 1e-4, 1e-2))
    assert param.distribution() == CategoricalDistribution((1e-5, 1e-4, 1e-2))
    assert param.contains(1e-4)
    assert not param.contains(1e-3)
    with pytest.raises(SpaceError, match="must not be empty"):
        CategoricalParam("scheduler", ())


def test_non_finite_bound_fails() -> None:
    with pytest.raises(SpaceError, match="dropout: high must be finite"):
        FloatParam("dropout", 0.0, float("inf"))


def test_param_round_trips_through_dict() -> None:
    for param in (
        FloatParam("lr", 1e-4, 1e-2, log=True),
        IntParam("depth", 1, 4),
        CategoricalParam("scheduler", ("cosine", "constant")),
    ):
        assert param_from_dict(param.name, param.to_dict()) == param


def test_param_from_dict_names_unknown_keys() -> None:
    with pytest.raises(SpaceError, match=r"lr: unknown key\(s\) \['hgih'\]"):
        param_from_dict("lr", {"type": "float", "low": 1e-4, "hgih": 1e-2})
    with pytest.raises(SpaceError, match="lr: unknown parameter type 'flaot'"):
        param_from_dict("lr", {"type": "flaot", "low": 1e-4, "high": 1e-2})
