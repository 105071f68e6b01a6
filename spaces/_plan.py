"""Stages and plans: the guide's tuning order as a sequence of Optuna studies."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from stagetune.spaces._params import FloatParam, Param, SpaceError
from stagetune.spaces._range import RangeTestSpec

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler, GridSampler

StageKind = Literal["search", "lr_range_test", "regularization", "final"]
#: ``search``: an ordinary study over ``params``; ``lr_range_test``: stage 0, one
#: sweep that suggests the LR and narrows later ``lr`` ranges; ``regularization``:
#: step 4, searches ``params`` in the direction the fit diagnosis gives; ``final``:
#: step 5, one full run with everything tuned and early stopping.
STAGE_KINDS: tuple[str, ...] = ("search", "lr_range_test", "regularization", "final")
#: How a stage starts from the best configuration so far (``Stage.incumbent``).
IncumbentMode = Literal["retrain", "reuse"]
INCUMBENT_MODES: tuple[str, ...] = ("retrain", "reuse")
#: Kinds that run exactly one trial.
SINGLE_RUN_KINDS: tuple[str, ...] = ("lr_range_test", "final")
PrunerKind = Literal["median", "successive_halving", "none"]
SamplerKind = Literal["tpe", "random", "grid"]
PRUNER_KINDS: tuple[str, ...] = ("median", "successive_halving", "none")
SAMPLER_KINDS: tuple[str, ...] = ("tpe", "random", "grid")


@dataclass(frozen=True)
class PrunerSpec:
    """How a stage prunes, independent of the number of epochs.

    Args:
        kind: ``"median"`` (Optuna's MedianPruner), ``"successive_halving"`` or ``"none"``.
        n_startup_trials: Trials that finish before any pruning (median only).
        warmup_fraction: No trial is pruned before this fraction of its epochs ran.
            Stages whose parameters act late in training (weight decay, dropout) use a
            later first rung: pruning them at epoch 1 ranks seed noise.

    Example:
        >>> PrunerSpec("median", warmup_fraction=0.5).build(epochs=10).__class__.__name__
        'MedianPruner'
    """

    kind: PrunerKind = "median"
    n_startup_trials: int = 3
    warmup_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.kind not in PRUNER_KINDS:
            raise SpaceError(f"pruner: unknown kind {self.kind!r}; allowed: {PRUNER_KINDS}.")
        if isinstance(self.n_startup_trials, bool) or not isinstance(self.n_startup_trials, int):
            raise SpaceError(
                f"pruner: n_startup_trials must be an integer, got {self.n_startup_trials!r}."
            )
        if self.n_startup_trials < 0:
            raise SpaceError(
                f"pruner: n_startup_trials must be >= 0, but got {self.n_startup_trials!r}."
            )
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise SpaceError(
                f"pruner: warmup_fraction must be in [0, 1), but got {self.warmup_fraction!r}."
            )

    def first_step(self, epochs: int) -> int:
        """The first epoch (1-based report step) at which a trial may be pruned."""
        return max(1, round(self.warmup_fraction * epochs))

    def build(self, epochs: int) -> BasePruner:
        import optuna

        if self.kind == "none":
            return optuna.pruners.NopPruner()
        if self.kind == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.first_step(epochs), reduction_factor=3
            )
        return optuna.pruners.MedianPruner(
            n_startup_trials=self.n_startup_trials, n_warmup_steps=self.first_step(epochs)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_startup_trials": self.n_startup_trials,
            "warmup_fraction": self.warmup_fraction,
        }


@dataclass(frozen=True)
class SamplerSpec:
    """How a stage samples its parameters.

    Args:
        kind: ``"tpe"``, ``"random"``, or ``"grid"`` (every combination of
            categorical parameters, e.g. the guide's step-3 weight-decay grid).
        n_startup_trials: Random trials before TPE models the results; ``None``
            takes a third of the stage's budget.
    """

    kind: SamplerKind = "tpe"
    n_startup_trials: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SAMPLER_KINDS:
            raise SpaceError(f"sampler: unknown kind {self.kind!r}; allowed: {SAMPLER_KINDS}.")
        if self.n_startup_trials is not None and self.n_startup_trials < 0:
            raise SpaceError(
                f"sampler: n_startup_trials must be >= 0, but got {self.n_startup_trials!r}."
            )

    def build(self, stage: Stage, *, seed: int | None, trials: int | None = None) -> BaseSampler:
        """The sampler; ``trials``: the stage's budget in trials or trial-equivalents
        (default: ``stage.n_trials``), a third of which TPE samples at random first."""
        import optuna

        if self.kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.kind == "grid":
            grid: dict[str, Sequence[Any]] = {}
            for param in stage.params:
                choices = getattr(param, "choices", None)
                if choices is None:
                    raise SpaceError(
                        f"stage {stage.name!r}: a grid sampler needs categorical parameters, "
                        f"but {param.name!r} is a range."
                    )
                grid[param.name] = list(choices)
            return _stageless_grid(grid, seed)
        startup = self.n_startup_trials
        if startup is None:
            startup = max(1, (stage.n_trials if trials is None else trials) // 3)
        return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_startup_trials": self.n_startup_trials}


@dataclass(frozen=True)
class Stage:
    """One step of a plan: an Optuna study that searches ``params``.

    Args:
        name: Stage name; the study is called ``"<search>/<name>"``.
        params: The hyperparameters this stage searches.
        n_trials: Budget in trials: finished (complete + pruned) trials the stage
            needs when the plan has no epoch ``budget`` (or the stage no ``share``).
        pruner: How bad trials are stopped early.
        sampler: How parameters are sampled.
        why: One line on why this stage is here (shown in notes and summaries).
        kind: What the stage does (``STAGE_KINDS``); ``"search"`` by default.
        range_test: The sweep of an ``lr_range_test`` stage (default: the guide's).
        epochs: Epochs of a ``final`` stage (default: the search's epochs per trial).
        early_stopping_patience: Epochs without a better validation metric after
            which a ``final`` stage stops (the guide: 10-20); ``None``: never.
        share: The stage's part of the plan's epoch ``budget``, relative to the
            shares of the plan's other stages (``Plan.stage_fractions``); ``None``:
            the stage counts ``n_trials`` instead (grid stages, the range test, the
            final run).
        incumbent: How the stage's first trial, the best configuration so far, is
            measured: ``"retrain"`` trains it again (a second sample of a noisy
            metric, at a trial's cost); ``"reuse"`` records the earlier stage's trial
            in this stage's study (its value and learning curve, 0 epochs) so that
            the stage's whole share goes to new configurations. Only a stage whose
            first trial is exactly that configuration reuses it.

    Example:
        >>> from spaces import FloatParam
        >>> Stage("lr", (FloatParam("lr", 1e-4, 1e-2, log=True),), n_trials=8).param_names
        ('lr',)
    """

    name: str
    params: tuple[Param, ...]
    n_trials: int
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    why: str = ""
    kind: StageKind = "search"
    range_test: RangeTestSpec | None = None
    epochs: int | None = None
    early_stopping_patience: int | None = None
    share: float | None = None
    incumbent: IncumbentMode = "retrain"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise SpaceError(
                f"A stage name must be a non-empty string without '/', but got {self.name!r}."
            )
        if not isinstance(self.params, tuple):
            object.__setattr__(self, "params", tuple(self.params))
        if self.kind not in STAGE_KINDS:
            raise SpaceError(
                f"stage {self.name!r}: unknown kind {self.kind!r}; allowed: {STAGE_KINDS}."
            )
        self._check_kind()
        if not self.params and self.kind != "final":
            raise SpaceError(f"stage {self.name!r}: params must not be empty.")
        names = [p.name for p in self.params]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SpaceError(f"stage {self.name!r}: parameter(s) listed twice: {duplicated}.")
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int):
            raise SpaceError(
                f"stage {self.name!r}: n_trials must be an integer, but got {self.n_trials!r}."
            )
        if self.n_trials < 1:
            raise SpaceError(
                f"stage {self.name!r}: n_trials must be >= 1, but got {self.n_trials!r}."
            )
        self._check_share()
        if self.incumbent not in INCUMBENT_MODES:
            raise SpaceError(
                f"stage {self.name!r}: unknown incumbent {self.incumbent!r}; allowed: "
                f"{', '.join(INCUMBENT_MODES)}."
            )

    def _check_share(self) -> None:
        share = self.share
        if share is None:
            return
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise SpaceError(
                f"stage {self.name!r}: share must be a number > 0, but got {share!r}."
            )
        if not (math.isfinite(share) and share > 0):
            raise SpaceError(f"stage {self.name!r}: share must be > 0, but got {share!r}.")
        if self.single_run:
            raise SpaceError(
                f"stage {self.name!r}: a {self.kind} stage runs one trial outside the "
                f"epoch budget, so it has no share (got {share!r})."
            )
        object.__setattr__(self, "share", float(share))

    def _check_kind(self) -> None:
        name = self.name
        if self.kind == "lr_range_test":
            if self.range_test is None:
                object.__setattr__(self, "range_test", RangeTestSpec())
            lr = self.params[0] if len(self.params) == 1 else None
            if not (isinstance(lr, FloatParam) and lr.name == "lr" and lr.log):
                raise SpaceError(
                    f"stage {name!r}: an lr_range_test stage has exactly one parameter, "
                    f"'lr', a float log range (the optimizer's guide range, which the "
                    f"suggestion is clipped to), but got {[p.name for p in self.params]}."
                )
        elif self.range_test is not None:
            raise SpaceError(
                f"stage {name!r}: range_test applies to kind 'lr_range_test' only, "
                f"but the stage's kind is {self.kind!r}."
            )
        if self.kind == "final":
            if self.params:
                raise SpaceError(
                    f"stage {name!r}: a final stage searches nothing (it trains once with "
                    f"every tuned value), but got params {[p.name for p in self.params]}."
                )
        else:
            for option in ("epochs", "early_stopping_patience"):
                if getattr(self, option) is not None:
                    raise SpaceError(
                        f"stage {name!r}: {option} applies to kind 'final' only, but the "
                        f"stage's kind is {self.kind!r}."
                    )
        for option in ("epochs", "early_stopping_patience"):
            value = getattr(self, option)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise SpaceError(
                    f"stage {name!r}: {option} must be an integer >= 1, but got {value!r}."
                )
        if self.kind in SINGLE_RUN_KINDS and self.n_trials != 1:
            raise SpaceError(
                f"stage {name!r}: a {self.kind} stage runs one trial, so n_trials must "
                f"be 1, but got {self.n_trials!r}."
            )

    @property
    def single_run(self) -> bool:
        """Whether the stage is one run (range test, final) rather than a search."""
        return self.kind in SINGLE_RUN_KINDS

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "n_trials": self.n_trials,
            "params": {p.name: p.to_dict() for p in self.params},
            "pruner": self.pruner.to_dict(),
            "sampler": self.sampler.to_dict(),
        }
        if self.range_test is not None:
            out["range_test"] = self.range_test.to_dict()
        for option in ("epochs", "early_stopping_patience", "share"):
            if getattr(self, option) is not None:
                out[option] = getattr(self, option)
        if self.incumbent != "retrain":  # the default leaves older plans' fingerprints alone
            out["incumbent"] = self.incumbent
        return out


@dataclass(frozen=True)
class Plan:
    """Ordered stages plus the values every parameter has before it is tuned.

    Args:
        stages: Stages, run in order; each carries its best values forward.
        defaults: The guide's step-1 defaults (and the task's own settings) for
            every parameter a trial needs.
        profile: Name of the profile the plan was made from.
        budget: The search's compute in trial-equivalents: ``budget x epochs per
            trial`` trained epochs (pruned trials' partial epochs included), split
            over the stages that have a ``share``; ``None``: every stage counts
            its ``n_trials``.

    Example:
        >>> from spaces import core_plan
        >>> [s.name for s in core_plan("mlp").stages]
        ['lr', 'weight_decay', 'regularization']
        >>> core_plan("mlp").budget, core_plan("mlp").stage_fractions()
        (22, {'lr': 0.45, 'weight_decay': 0.275, 'regularization': 0.275})
    """

    stages: tuple[Stage, ...]
    defaults: Mapping[str, Any]
    profile: str = "custom"
    budget: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise SpaceError("A plan needs at least one stage.")
        names = [s.name for s in self.stages]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SpaceError(f"Stage names must be unique, but {duplicated} appear twice.")
        object.__setattr__(self, "defaults", dict(self.defaults))
        self._check_budget()

    def _check_budget(self) -> None:
        budget = self.budget
        if budget is None:
            return
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise SpaceError(
                f"budget: must be an integer >= 1 (trial-equivalents), but got {budget!r}."
            )
        fractions = self.stage_fractions()
        if not fractions:
            raise SpaceError(
                "budget: no stage of the plan has a share of it; give the search stages "
                "a share, or count trials (n_trials) instead of a budget."
            )
        for name, fraction in fractions.items():
            if budget * fraction < 1 - 1e-9:
                needed = math.ceil(1 / fraction - 1e-9)
                raise SpaceError(
                    f"budget: stage {name!r} gets {budget * fraction:.2g} trial-equivalents "
                    f"of {budget}, less than one trial; give a budget of at least {needed} "
                    f"or a larger share."
                )

    def stage_fractions(self) -> dict[str, float]:
        """Each budgeted stage's fraction of the budget: its share over all shares.

        Example:
            >>> from spaces import core_plan
            >>> core_plan("mlp").stage_fractions()["lr"]
            0.45
        """
        shares = {s.name: s.share for s in self.stages if s.share is not None}
        total = sum(shares.values())
        return {name: share / total for name, share in shares.items()}

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise SpaceError(f"Unknown stage {name!r}; this plan has {[s.name for s in self.stages]}.")

    def with_trials(self, n_trials: int) -> Plan:
        """The same plan counting trials: every search stage's budget is ``n_trials``
        finished trials (the range test and the final run stay one trial each), and
        the plan has no epoch budget."""
        return replace(
            self,
            budget=None,
            stages=tuple(
                s if s.single_run else replace(s, n_trials=n_trials) for s in self.stages
            ),
        )

    def with_budget(self, budget: int) -> Plan:
        """The same plan with an epoch budget of ``budget`` trial-equivalents, split
        over its stages by their shares.

        Raises:
            SpaceError: No stage has a share, or one would get less than a trial.
        """
        return replace(self, budget=budget)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "profile": self.profile,
            "defaults": dict(sorted(self.defaults.items())),
            "stages": [s.to_dict() for s in self.stages],
        }
        if self.budget is not None:
            out["budget"] = self.budget
        return out

    def fingerprint(self) -> str:
        """A short hash of everything that decides which trials a search runs."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stageless_grid(grid: dict[str, Sequence[Any]], seed: int | None) -> BaseSampler:
    """Optuna's GridSampler without its ``study.stop()`` when the grid is exhausted.

    A stage runs its trials with ask/tell and ends at its budget, so the stop is not
    needed, and outside ``study.optimize`` Optuna raises on it.
    """
    return _grid_sampler_class()(grid, seed=seed)


@functools.cache
def _grid_sampler_class() -> type[GridSampler]:
    import optuna  # imported when a grid stage runs, not with stagetune.spaces

    class StageGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            """Nothing: the stage's budget, not the sampler, ends the stage."""

    return StageGridSampler
