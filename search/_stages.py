"""What each kind of stage does: the guide's five steps on top of the staged search.

``StagedSearch`` runs every stage as an Optuna study; this module decides, per
stage kind, the objective and direction of that study, the ranges it searches
after the stages before it (the LR window from the range test, the direction of
step 4 from the fit diagnosis), and what is written on the study when it ends
(the range test's curve, the per-stage summary of the LR diagnoses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from stagetune.objectives import (
    ConfigError,
    FinalObjective,
    FunctionObjective,
    FunctionRangeTestObjective,
    RangeTestObjective,
    StageObjective,
    Task,
    TrainConfig,
    diagnose_fit,
    summarize_lr_diagnoses,
)
from stagetune.search._format import edge_lines
from stagetune.spaces import (
    FloatParam,
    IntParam,
    Param,
    Plan,
    Stage,
    directed_param,
    narrow_lr_range,
    range_edge,
)
from stagetune.storage import StudyAttr, TrialAttr, TrialSystemAttr, write_attrs

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore

    from stagetune.objectives import CheckpointPolicy, Task, TrainFunction

Carried = Mapping[str, tuple[Param, Any]]


def validate_plan(plan: Plan) -> None:
    """Check, before any training, that every value a trial can get is one it can train
    with: the defaults, and each searched range's ends and choices.

    Raises:
        ConfigError: Naming the stage, the parameter and the allowed values.
    """
    try:
        TrainConfig.from_params(plan.defaults)
    except ConfigError as error:
        raise ConfigError(f"plan defaults: {error}") from None
    for stage in plan.stages:
        for param in stage.params:
            for value in _probe_values(param):
                try:
                    TrainConfig.from_params({**plan.defaults, param.name: value})
                except ConfigError as error:
                    raise ConfigError(
                        f"stage {stage.name!r}, parameter {param.name!r}: {error}"
                    ) from None
    if any("batch_size" in s.param_names for s in plan.stages) and (
        "batch_size" not in plan.defaults
    ):
        raise ConfigError(
            "A stage searches batch_size, so the LR scales from the default batch size: "
            "set batch_size in the plan's defaults."
        )


def _probe_values(param: Param) -> tuple[Any, ...]:
    if isinstance(param, (FloatParam, IntParam)):
        return (param.low, param.high)
    return tuple(param.choices)


def lr_reference_batch(plan: Plan) -> int | None:
    """The batch size ``lr`` is tuned at when some stage searches batch size (the
    linear scaling rule then scales it per trial), else ``None``."""
    if any("batch_size" in s.param_names for s in plan.stages):
        return int(plan.defaults["batch_size"])
    return None


def direction_for(stage: Stage, task: Task | TrainFunction) -> Literal["minimize", "maximize"]:
    """The study direction: the range test minimizes its loss; the rest follow the task."""
    return "minimize" if stage.kind == "lr_range_test" else task.direction


#: What the range test's study scores: the minimum of the smoothed training loss.
RANGE_TEST_METRIC = "range_test_min_loss"


def metric_name(stage: Stage, metric: str) -> str:
    """The objective's name on the stage's study (the dashboard's axis label)."""
    return RANGE_TEST_METRIC if stage.kind == "lr_range_test" else metric


def first_trial(stage: Stage) -> bool:
    """Whether the stage's first trial is queued with the guide's default.

    Not for the range test, whose one trial records the LR it finds, nor for a grid
    stage, which tries every point of its grid once, the default among them: Optuna's
    GridSampler gives a queued trial no grid point, so the default would run twice and
    one point of the grid never."""
    return stage.kind != "lr_range_test" and stage.sampler.kind != "grid"


@dataclass
class StageContext:
    """What the stages run so far left for the next ones.

    Attributes:
        range_test: The range test's curve and suggestion (``None`` before it ran).
        last_best: Best trial of the latest search stage (for step 4's diagnosis).
        attrs: Study attributes for the stage about to run, by stage name.
    """

    range_test: dict[str, Any] | None = None
    range_test_window: float = 10.0
    narrow: bool = True
    last_best: optuna.trial.FrozenTrial | None = None
    last_study: str | None = None
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolve(self, stage: Stage, carried: Carried, defaults: Mapping[str, Any]) -> Stage:
        """``stage`` with the ranges that the stages before it decided."""
        attrs: dict[str, Any] = {}
        if "lr" in stage.param_names and stage.kind != "lr_range_test":
            stage = self._narrow_lr(stage, attrs)
        if stage.kind == "regularization":
            stage = self._direct(stage, carried, defaults, attrs)
        self.attrs[stage.name] = attrs
        return stage

    def _narrow_lr(self, stage: Stage, attrs: dict[str, Any]) -> Stage:
        if self.range_test is None or not self.narrow:
            return stage
        lr = stage.param("lr")
        if not isinstance(lr, FloatParam) or not lr.log:
            return stage
        window = narrow_lr_range(
            self.range_test["suggestion"], lr.low, lr.high, window=self.range_test_window
        )
        source = (
            f"LR range test: {self.range_test['rule']} LR / {self.range_test['divisor']:g} = "
            f"{window.raw_suggestion:.3g}, x{self.range_test_window:g} window inside "
            f"[{lr.low:g}, {lr.high:g}] ({lr.source})"
        )
        narrowed = FloatParam("lr", window.low, window.high, log=True, source=source)
        attrs[StudyAttr.LR_WINDOW] = {
            "low": window.low,
            "high": window.high,
            "suggestion": window.suggestion,
            "raw_suggestion": window.raw_suggestion,
            "clipped": window.clipped,
            "guide_range": [lr.low, lr.high],
            "source": source,
        }
        return replace(
            stage, params=tuple(narrowed if p.name == "lr" else p for p in stage.params)
        )

    def _direct(
        self,
        stage: Stage,
        carried: Carried,
        defaults: Mapping[str, Any],
        attrs: dict[str, Any],
    ) -> Stage:
        diagnosis = self._fit()
        record: dict[str, Any] = {"from_trial": None, **diagnosis}
        if self.last_best is not None:
            record["from_trial"] = self.last_best.number
        params: list[Param] = []
        for param in stage.params:
            current = carried[param.name][1] if param.name in carried else defaults.get(param.name)
            cut = directed_param(param, current, diagnosis["direction"])
            if cut is not None:
                params.append(cut)
        if params:
            stage = replace(stage, params=tuple(params))
            record["applied"] = True
        else:
            record["applied"] = False
            record["reason"] += "; nothing left on that side of the current values: full ranges"
        record["ranges"] = {p.name: p.to_dict() for p in stage.params}
        attrs[StudyAttr.FIT_DIAGNOSIS] = record
        return stage

    def _fit(self) -> dict[str, Any]:
        best = self.last_best
        if best is None:
            return {"label": "good_fit", "direction": 0, "reason": "no earlier stage to read"}
        attrs = best.user_attrs
        train = attrs.get(TrialAttr.TRAIN_LOSS_CURVE) or [attrs.get(TrialAttr.TRAIN_LOSS)]
        val = attrs.get(TrialAttr.VAL_LOSS_CURVE) or [attrs.get(TrialAttr.VAL_LOSS)]
        if None in train or None in val:
            return {"label": "good_fit", "direction": 0, "reason": "no loss curves recorded"}
        return diagnose_fit(train, val, initial_loss=attrs.get(TrialAttr.INITIAL_LOSS)).to_dict()

    def finished(self, stage: Stage, study: optuna.Study) -> None:
        """Take what ``stage`` left for the stages after it."""
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return
        if stage.kind == "lr_range_test":
            self.range_test = study.best_trial.user_attrs.get(TrialAttr.RANGE_TEST)
            assert stage.range_test is not None
            self.range_test_window = stage.range_test.window
            self.narrow = stage.range_test.narrow
        elif stage.kind in ("search", "regularization"):
            self.last_best = study.best_trial
            self.last_study = study.study_name

    def reused_trial(
        self,
        stage: Stage,
        *,
        first: Mapping[str, Any],
        carried: Carried,
        fixed: Mapping[str, Any],
        defaults: Mapping[str, Any],
    ) -> optuna.trial.FrozenTrial | None:
        """The stage's first trial as the latest search stage measured it, to record
        instead of training it again (``Stage.incumbent = "reuse"``); ``None`` when the
        stage re-trains, has no earlier best, or its first trial is another configuration.

        Args:
            stage: The stage about to open.
            first: The values its first trial would be queued with (``_first_trial``).
            carried: Every value the stages before it decided, with its parameter.
            fixed: Those this stage does not search.
            defaults: The plan's defaults.
        """
        best = self.last_best
        if stage.incumbent != "reuse" or best is None or best.value is None:
            return None
        if set(first) != set(stage.param_names):
            return None  # a value outside this stage's ranges: the first trial is sampled
        wanted = {**defaults, **fixed, **first}
        had = {**defaults, **best.params}
        if any(wanted.get(k) != had.get(k) for k in {*wanted, *had}):
            return None
        from optuna.distributions import BaseDistribution
        from optuna.trial import TrialState, create_trial

        # what the stage's objective suggests: the carried parameters, then its own
        params = [*suggested_carried(carried, fixed), *stage.params]
        distributions: dict[str, BaseDistribution] = {p.name: p.distribution() for p in params}
        source = best.system_attrs.get(TrialSystemAttr.REUSED) or {
            "study": self.last_study,
            "number": best.number,
        }
        return create_trial(
            state=TrialState.COMPLETE,
            value=best.value,
            params={name: wanted[name] for name in distributions},
            distributions=distributions,
            user_attrs=dict(best.user_attrs),
            system_attrs={TrialSystemAttr.REUSED: source},
            intermediate_values=dict(best.intermediate_values),
        )


def suggested_carried(carried: Carried, fixed: Mapping[str, Any]) -> tuple[Param, ...]:
    """The carried parameters a stage's objective suggests (fixed at their carried value),
    in the order it suggests them, before the stage's own."""
    return tuple(p for n, (p, _) in carried.items() if n in fixed)


def build_objective(
    stage: Stage,
    *,
    task: Task | TrainFunction,
    carried: Carried,
    fixed: Mapping[str, Any],
    plan: Plan,
    epochs: int,
    device: torch.device | None,
    seed: int,
    artifacts: ArtifactStore | None = None,
    checkpoints: CheckpointPolicy | None = None,
    trial_timeout: float | None = None,
) -> Any:
    """The objective of one stage, by its kind.

    Search stages get the per-trial time limit; the final run gets none (it is meant
    to be longer) and uploads its model to ``artifacts``; both checkpoint.
    """
    carried_params = suggested_carried(carried, fixed)
    if not isinstance(task, Task):
        return _function_objective(
            stage,
            function=task,
            carried=carried_params,
            plan=plan,
            epochs=epochs,
            device=device,
            seed=seed,
        )
    if stage.kind == "lr_range_test":
        assert stage.range_test is not None
        lr = stage.param("lr")
        assert isinstance(lr, FloatParam)
        return RangeTestObjective(
            task=task,
            clip=lr,
            spec=stage.range_test,
            carried=carried_params,
            defaults=plan.defaults,
            device=device,
            seed=seed,
        )
    common: dict[str, Any] = {
        "task": task,
        "searched": stage.params,
        "carried": carried_params,
        "defaults": plan.defaults,
        "epochs": epochs,
        "device": device,
        "seed": seed,
        "lr_reference_batch": lr_reference_batch(plan),
        "checkpoints": checkpoints,
    }
    if stage.kind == "final":
        return FinalObjective(
            **{**common, "epochs": stage.epochs or epochs},
            early_stopping_patience=stage.early_stopping_patience,
            artifacts=artifacts,
        )
    return StageObjective(**common, time_limit=trial_timeout)


def _function_objective(
    stage: Stage,
    *,
    function: TrainFunction,
    carried: tuple[Param, ...],
    plan: Plan,
    epochs: int,
    device: torch.device | None,
    seed: int,
) -> Any:
    """The objective of one stage whose trials call the user's train function."""
    if stage.kind == "lr_range_test":
        assert stage.range_test is not None
        lr = stage.param("lr")
        assert isinstance(lr, FloatParam)
        return FunctionRangeTestObjective.of(
            function,
            clip=lr,
            spec=stage.range_test,
            carried=carried,
            defaults=plan.defaults,
            device=device,
            seed=seed,
        )
    final = stage.kind == "final"
    return FunctionObjective(
        function,
        searched=stage.params,
        carried=carried,
        defaults=plan.defaults,
        epochs=(stage.epochs or epochs) if final else epochs,
        device=device,
        seed=seed,
        lr_reference_batch=lr_reference_batch(plan),
        early_stopping_patience=stage.early_stopping_patience if final else None,
        final=final,
    )


def stage_ended(stage: Stage, study: optuna.Study) -> None:
    """What a stage writes on its study when it has its budget: the range test's curve
    and suggestion, the final run's scores, and the count of each LR diagnosis."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    attrs: dict[str, Any] = {
        StudyAttr.LR_DIAGNOSES: summarize_lr_diagnoses(
            [
                t.user_attrs[TrialAttr.LR_DIAGNOSIS]
                for t in trials
                if TrialAttr.LR_DIAGNOSIS in t.user_attrs
            ]
        )
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if stage.kind == "lr_range_test" and complete:
        attrs[StudyAttr.RANGE_TEST] = study.best_trial.user_attrs.get(TrialAttr.RANGE_TEST)
        attrs.pop(StudyAttr.LR_DIAGNOSES)
    if stage.kind == "search" and complete:
        # step 4's cut ranges end at the current value by design: not for "regularization"
        attrs[StudyAttr.RANGE_EDGES] = range_edges(stage, study.best_trial.params)
    if stage.kind == "final" and complete:
        best = study.best_trial
        keys = (
            TrialAttr.BEST_EPOCH,
            TrialAttr.STOPPED_EARLY,
            TrialAttr.EPOCHS_RUN,
            TrialAttr.TEST_LOSS,
            TrialAttr.TEST_METRIC,
        )
        attrs[StudyAttr.FINAL] = {
            "val_metric": best.value,
            "params": best.params,
            **{k: best.user_attrs.get(k) for k in keys},
        }
    write_attrs(study, attrs)


def range_edges(stage: Stage, best: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The stage's best values that sit at an end of the range it searched."""
    edges = {}
    for param in stage.params:
        side = range_edge(param, best.get(param.name))
        if side is not None:
            spec = param.to_dict()
            edges[param.name] = {
                "value": best[param.name],
                "low": spec.get("low"),
                "high": spec.get("high"),
                "side": side,
            }
    return edges


def stage_line(study: optuna.Study, metric: str) -> str:
    """What a stage of a non-search kind found, in one line for the CLI ("" if nothing)."""
    attrs = study.user_attrs
    test = attrs.get(StudyAttr.RANGE_TEST)
    if test:
        return (
            f"suggested lr={test['suggestion']:.3g} ({test['rule']} LR {_lr_at(test)} / "
            f"{test['divisor']:g}; {len(test['lrs'])} batches, stopped: {test['stop_reason']})"
        )
    final = attrs.get(StudyAttr.FINAL)
    if final:
        early = ", stopped early" if final.get("stopped_early") else ""
        test_metric = final.get("test_metric")
        shown = "" if test_metric is None else f"test_{metric}={test_metric:.4g}, "
        return f"{shown}best epoch {final.get('best_epoch')} of {final.get('epochs_run')}{early}"
    parts = []
    window = attrs.get(StudyAttr.LR_WINDOW)
    if window:
        parts.append(f"lr range [{window['low']:.3g}, {window['high']:.3g}] from the range test")
    fit = attrs.get(StudyAttr.FIT_DIAGNOSIS)
    if fit:
        parts.append(f"diagnosis: {fit['label']} ({fit['reason']})")
    diagnoses = attrs.get(StudyAttr.LR_DIAGNOSES)
    if diagnoses:
        parts.append("LR: " + ", ".join(f"{k} {v}" for k, v in diagnoses.items() if v))
    parts += edge_lines(attrs.get(StudyAttr.RANGE_EDGES) or {})
    return "; ".join(parts)


def _lr_at(test: Mapping[str, Any]) -> str:
    key = "min_loss_lr" if test["rule"] == "min_loss" else "steepest_lr"
    return f"{test[key]:.3g}"
