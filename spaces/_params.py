"""Search ranges of single hyperparameters, validated when they are defined."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


class SpaceError(ValueError):
    """A search space, stage or plan was defined with a bad value."""


@dataclass(frozen=True)
class FloatParam:
    """A float hyperparameter searched over ``[low, high]``.

    Args:
        name: Hyperparameter name, e.g. ``"lr"``.
        low: Lower bound (inclusive).
        high: Upper bound (inclusive); must be greater than ``low``.
        log: Sample on a log scale; needs ``low > 0``.
        source: Where the range comes from (a section of the guide).

    Example:
        >>> FloatParam("lr", 1e-4, 1e-3, log=True).distribution()
        FloatDistribution(high=0.001, log=True, low=0.0001, step=None)
    """

    name: str
    low: float
    high: float
    log: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpaceError(f"{self.name}: {bound} must be a number, but got {value!r}.")
            if not math.isfinite(value):
                raise SpaceError(f"{self.name}: {bound} must be finite, but got {value!r}.")
        if self.low >= self.high:
            raise SpaceError(
                f"{self.name}: low must be less than high, but got low={self.low!r}, "
                f"high={self.high!r}."
            )
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.name}: a log range needs low > 0, but got low={self.low!r}.")

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(float(self.low), float(self.high), log=self.log)

    def contains(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class IntParam:
    """An integer hyperparameter searched over ``[low, high]`` (inclusive).

    Example:
        >>> IntParam("batch_size", 16, 256, log=True).distribution().high
        256
    """

    name: str
    low: int
    high: int
    log: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpaceError(f"{self.name}: {bound} must be an integer, but got {value!r}.")
        if self.low >= self.high:
            raise SpaceError(
                f"{self.name}: low must be less than high, but got low={self.low!r}, "
                f"high={self.high!r}."
            )
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.name}: a log range needs low > 0, but got low={self.low!r}.")

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log)

    def contains(self, value: object) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
        )

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class CategoricalParam:
    """A hyperparameter chosen from a fixed list (also used for grids such as the
    guide's step-3 weight-decay grid).

    Example:
        >>> CategoricalParam("scheduler", ("cosine", "constant")).choices
        ('cosine', 'constant')
    """

    name: str
    choices: tuple[Any, ...] = field(default_factory=tuple)
    source: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 1:
            raise SpaceError(f"{self.name}: choices must not be empty, but got {self.choices!r}.")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise SpaceError(f"{self.name}: choices must be distinct, but got {self.choices!r}.")
        for choice in self.choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise SpaceError(
                    f"{self.name}: choices must be None, bool, int, float or str, "
                    f"but got {choice!r}."
                )

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.choices)

    def contains(self, value: object) -> bool:
        return value in self.choices

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


Param = FloatParam | IntParam | CategoricalParam


def param_from_dict(name: str, spec: Mapping[str, Any], *, source: str = "") -> Param:
    """Build a parameter from its ``to_dict`` form (as written in a plan file).

    Example:
        >>> param_from_dict("lr", {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}).log
        True
    """
    kind = spec.get("type", "float")
    allowed = {
        "float": {"type", "low", "high", "log"},
        "int": {"type", "low", "high", "log"},
        "categorical": {"type", "choices"},
    }
    if kind not in allowed:
        raise SpaceError(
            f"{name}: unknown parameter type {kind!r}; allowed: 'float', 'int', 'categorical'."
        )
    unknown = set(spec) - allowed[kind]
    if unknown:
        raise SpaceError(
            f"{name}: unknown key(s) {sorted(unknown)} for a {kind} parameter; "
            f"allowed: {sorted(allowed[kind])}."
        )
    try:
        if kind == "categorical":
            return CategoricalParam(name, tuple(spec["choices"]), source=source)
        cls = FloatParam if kind == "float" else IntParam
        return cls(
            name, spec["low"], spec["high"], log=bool(spec.get("log", False)), source=source
        )
    except KeyError as missing:
        raise SpaceError(f"{name}: a {kind} parameter needs the key {missing}.") from None


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(f"A parameter name must be an identifier, but got {name!r}.")
