"""How numbers and ranges are written wherever a search is shown: ``status``, the run's
summary, the dashboard notes, the report (a bottom layer of ``stagetune.search``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt(value: Any) -> str:
    """A value as the CLI, notes and report show it: floats to 4 significant digits.

    Example:
        >>> fmt(0.000123456), fmt(64), fmt("adamw")
        ('0.0001235', '64', 'adamw')
    """
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_signed(delta: float) -> str:
    """A change, with its sign.

    Example:
        >>> fmt_signed(0.0123), fmt_signed(-2.0)
        ('+0.0123', '-2')
    """
    return f"{delta:+.4g}"


def fmt_range(spec: Mapping[str, Any]) -> str:
    """A searched range as stored (``Param.to_dict()``).

    Example:
        >>> fmt_range({"type": "float", "low": 1e-4, "high": 0.03, "log": True})
        '0.0001 – 0.03, log'
        >>> fmt_range({"type": "categorical", "choices": ["cosine", "constant"]})
        '{cosine, constant}'
    """
    if "choices" in spec:
        return "{" + ", ".join(fmt(c) for c in spec["choices"]) + "}"
    scale = ", log" if spec.get("log") else ""
    return f"{fmt(spec.get('low'))} – {fmt(spec.get('high'))}{scale}"


def edge_lines(edges: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning per value at an end of its range."""
    return [
        f"best {name}={edge['value']:.3g} at the {'top' if edge['side'] == 'high' else 'bottom'} "
        f"of its range [{edge['low']:.3g}, {edge['high']:.3g}]: the optimum may lie "
        f"{'above' if edge['side'] == 'high' else 'below'} it (a plan file can widen the range)"
        for name, edge in edges.items()
    ]
