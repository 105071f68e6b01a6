"""Where a search should look next: step 4's direction (cut a regularizer's range to the
side the fit diagnosis asks for), and a best value at the edge of its range."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

from stagetune.spaces._guide import REGULARIZERS, REGULARIZERS_SOURCE
from stagetune.spaces._params import CategoricalParam, FloatParam, IntParam, Param


def directed_param(param: Param, current: object, direction: int) -> Param | None:
    """``param``'s range on the side of ``current`` that ``direction`` asks for.

    Args:
        param: A parameter of a regularization stage.
        current: Its value so far (carried from an earlier stage, or the default).
        direction: ``+1`` regularize more, ``-1`` less, ``0`` both ways.

    Returns:
        ``param`` unchanged when it is not a regularizer (``REGULARIZERS``), when
        ``direction`` is 0, or when ``current`` is not a number; the cut range
        (``current`` becomes one end) otherwise; ``None`` when nothing is left on that
        side (e.g. dropout already 0 and the model underfits).

    Example:
        >>> cut = directed_param(FloatParam("dropout", 0.0, 0.5), 0.3, +1)
        >>> (cut.low, cut.high)
        (0.3, 0.5)
    """
    sign = REGULARIZERS.get(param.name)
    if sign is None or direction == 0:
        return param
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        return param
    upward = sign * direction > 0
    note = f"{param.source}; {REGULARIZERS_SOURCE.split(' / ')[1]}: " + (
        "more" if direction > 0 else "less"
    )
    if isinstance(param, CategoricalParam):
        numbers = [
            c for c in param.choices if isinstance(c, (int, float)) and not isinstance(c, bool)
        ]
        if len(numbers) != len(param.choices):
            return param
        kept = tuple(c for c in numbers if (c >= current if upward else c <= current))
        if len(kept) < 2:
            return None
        return CategoricalParam(param.name, kept, source=note)
    assert isinstance(param, (FloatParam, IntParam))
    value = min(max(current, param.low), param.high)
    low, high = (value, param.high) if upward else (param.low, value)
    if low >= high:
        return None
    if isinstance(param, IntParam):
        return replace(param, low=int(low), high=int(high), source=note)
    return replace(param, low=float(low), high=float(high), source=note)


#: A value this close to an end of its range (as a fraction of the range, on the
#: parameter's own scale) counts as at that end.
EDGE_MARGIN = 0.05


def range_edge(param: Param, value: object) -> Literal["low", "high"] | None:
    """Which end of ``param``'s range ``value`` sits at, if any: a stage's best there
    says that the optimum may lie beyond the range (the guide's ranges are where good
    values usually are, not bounds; a plan file can widen one).

    Within ``EDGE_MARGIN`` of the range on the parameter's scale (log or linear). A
    lower bound of 0 on a linear scale is not an edge (no dropout, no smoothing is as
    far as such a range goes); categorical parameters have none.

    Example:
        >>> range_edge(FloatParam("lr", 1e-3, 0.1, log=True), 0.09)
        'high'
        >>> range_edge(FloatParam("dropout", 0.0, 0.5), 0.0) is None
        True
    """
    if isinstance(param, CategoricalParam):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, x = float(param.low), float(param.high), float(value)
    if param.log:
        if x <= 0:
            return None
        low, high, x = math.log(low), math.log(high), math.log(x)
    position = (x - low) / (high - low)
    if position >= 1 - EDGE_MARGIN:
        return "high"
    if position <= EDGE_MARGIN and (param.log or param.low != 0):
        return "low"
    return None
