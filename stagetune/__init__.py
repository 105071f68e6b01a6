"""stagetune: staged hyperparameter search for PyTorch, the tuning guide as Optuna studies.

One import name holds four subpackages, each a folder at the repository's root:
``stagetune.spaces`` (the guide as data), ``stagetune.storage`` (where studies live),
``stagetune.objectives`` (training one trial) and ``stagetune.search`` (running the
stages). The names used most are re-exported here::

    from stagetune import StagedSearch, default_plan

    result = StagedSearch(default_plan("mlp"), "digits-mlp").run()

They are loaded on first use, so ``import stagetune`` (and ``stagetune --help``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagetune.objectives import Splits, Task, TrainFunction, get_task
    from stagetune.search import (
        AskTell,
        SearchError,
        SearchResult,
        SearchTimeout,
        StagedSearch,
        load_model,
    )
    from stagetune.spaces import Plan, Stage, default_plan, get_profile

__version__ = "0.1.0"

_EXPORTS = {
    "StagedSearch": "stagetune.search",
    "AskTell": "stagetune.search",
    "SearchResult": "stagetune.search",
    "SearchError": "stagetune.search",
    "SearchTimeout": "stagetune.search",
    "load_model": "stagetune.search",
    "Plan": "stagetune.spaces",
    "Stage": "stagetune.spaces",
    "default_plan": "stagetune.spaces",
    "get_profile": "stagetune.spaces",
    "Task": "stagetune.objectives",
    "Splits": "stagetune.objectives",
    "TrainFunction": "stagetune.objectives",
    "get_task": "stagetune.objectives",
}

__all__ = [
    "AskTell",
    "Plan",
    "SearchError",
    "SearchResult",
    "SearchTimeout",
    "Splits",
    "Stage",
    "StagedSearch",
    "Task",
    "TrainFunction",
    "__version__",
    "default_plan",
    "get_profile",
    "get_task",
    "load_model",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name's subpackage when the name is first used (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stagetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
