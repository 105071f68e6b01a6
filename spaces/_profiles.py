"""Profiles: a model family and regime -> step-1 defaults and the plan's stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spaces._guide import (
    DROPOUT,
    LEARNING_RATE,
    STEP_ONE,
    WEIGHT_DECAY_GRID,
    WEIGHT_DECAY_GRID_SOURCE,
)
from spaces._params import FloatParam, SpaceError
from spaces._plan import Plan, PrunerSpec, Stage

#: Why each default stage exists, in the guide's words.
STAGE_WHY: dict[str, str] = {
    "lr": "Learning rate first: 'the single most important hyperparameter' (The Priority Order).",
    "weight_decay": "Weight decay next: 'second most impactful hyperparameter after LR'.",
    "regularization": "Regularization last: 'Tune this last. Fix your LR, weight decay, and "
    "schedule first' (Dropout Rate).",
}


@dataclass(frozen=True)
class Profile:
    """A model family x regime and how to build its plan.

    Args:
        name: Profile name, as given to ``--profile``.
        description: One line for ``stagetune profiles``.
        build: ``build(n_trials)`` returns the profile's plan; ``n_trials=None``
            keeps the profile's own budgets.
    """

    name: str
    description: str
    build: Callable[[int | None], Plan]


def _mlp_plan(n_trials: int | None) -> Plan:
    step1 = STEP_ONE["adamw"]
    lr = LEARNING_RATE["adamw_scratch"]
    fc = DROPOUT["fc"]
    defaults: dict[str, Any] = {
        "optimizer": step1.optimizer,
        "lr": lr.default,
        "weight_decay": step1.weight_decay,
        "batch_size": 64,
        "scheduler": step1.scheduler,
        "warmup_fraction": 0.0,
        "grad_clip": step1.grad_clip,
        "dropout": fc.low,
    }
    stages = (
        Stage(
            "lr",
            (FloatParam("lr", lr.search_low, lr.search_high, log=True, source=lr.source),),
            n_trials=10,
            pruner=PrunerSpec("median", n_startup_trials=3, warmup_fraction=0.25),
            why=STAGE_WHY["lr"],
        ),
        Stage(
            "weight_decay",
            (
                FloatParam(
                    "weight_decay",
                    min(WEIGHT_DECAY_GRID),
                    max(WEIGHT_DECAY_GRID),
                    log=True,
                    source=WEIGHT_DECAY_GRID_SOURCE,
                ),
            ),
            n_trials=6,
            pruner=PrunerSpec("median", n_startup_trials=3, warmup_fraction=0.5),
            why=STAGE_WHY["weight_decay"],
        ),
        Stage(
            "regularization",
            (FloatParam("dropout", 0.0, fc.high, source=fc.source),),
            n_trials=6,
            pruner=PrunerSpec("median", n_startup_trials=3, warmup_fraction=0.5),
            why=STAGE_WHY["regularization"],
        ),
    )
    plan = Plan(stages, defaults, profile="mlp")
    return plan if n_trials is None else plan.with_trials(n_trials)


#: Decisions for the MLP profile, tested in tests/spaces_tests/test_profiles.py:
#: - lr: the AdamW-from-scratch search range (see LEARNING_RATE["adamw_scratch"]).
#: - weight_decay: the span of the step-3 grid [1e-5, 1e-2] on a log scale, so that
#:   every grid value can be drawn and TPE can also land between them.
#: - dropout: the FC row's upper end (0.5); the lower end is widened from 0.3 to 0
#:   because step 4 asks to *decrease* dropout when underfitting. The first trial
#:   uses the FC row's lower end, 0.3.
PROFILES: dict[str, Profile] = {
    "mlp": Profile("mlp", "MLP / tabular, trained from scratch with AdamW", _mlp_plan),
}


def default_plan(profile: str = "mlp", *, n_trials: int | None = None) -> Plan:
    """The plan of a profile: ``lr`` -> ``weight_decay`` -> ``regularization``.

    Args:
        profile: A name from ``PROFILES``.
        n_trials: If given, every stage's budget.

    Example:
        >>> default_plan("mlp", n_trials=4).stages[0].n_trials
        4
    """
    try:
        entry = PROFILES[profile]
    except KeyError:
        raise SpaceError(f"Unknown profile {profile!r}; available: {sorted(PROFILES)}.") from None
    return entry.build(n_trials)
