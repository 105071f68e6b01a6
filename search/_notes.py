"""Markdown notes on the stage studies, so that optuna-dashboard tells the search's story.

Each stage study gets a note (``optuna_dashboard.save_note``) when the stage starts,
updated when it ends: what it searches and why, the ranges and where they come from,
the values carried in, the best result against the previous stage, trial counts and
the LR diagnosis. The first stage's study also carries the search-level note (the
plan, every stage's result, the final hyperparameters) above its own stage note.
Everything a note says is read back from storage, so any worker can rewrite it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.search._budget import trained_epochs
from stagetune.spaces import PRIORITY_ORDER, Plan, Stage
from stagetune.storage import StageLineage, read_lineage, search_stages

if TYPE_CHECKING:
    import optuna

#: Names the guide's priority order uses for stagetune's parameter names.
_PRIORITY_NAMES: dict[str, str] = {
    "lr": "learning_rate",
    "learning_rate": "learning_rate",
    "batch_size": "batch_size",
    "weight_decay": "weight_decay",
    "warmup_fraction": "warmup_steps",
    "warmup_steps": "warmup_steps",
    "scheduler": "scheduler",
    "grad_clip": "grad_clip",
    "dropout": "dropout",
    "drop_path": "dropout",
    "epochs": "epochs",
    "optimizer": "optimizer",
    "depth": "architecture_depth",
}

#: Trial user attributes that may hold the wrong-LR diagnosis of the trial's loss curve
#: (a class name, or a mapping with a ``label``); the first one present counts.
DIAGNOSIS_ATTRS: tuple[str, ...] = ("lr_diagnosis", "diagnosis")
#: Study user attribute of the LR range test: a mapping with ``lrs``, ``losses`` and
#: ``suggestion`` (any other attribute holding ``lrs`` and ``losses`` is found too).
RANGE_TEST_ATTR = "stagetune_lr_range_test"


@dataclass(frozen=True)
class StageFacts:
    """What a note says about one stage, read from its study.

    Attributes:
        lineage: The stage's lineage attributes.
        counts: Trials by state name (``"COMPLETE"``, ``"PRUNED"``, ...).
        best_number: Number of the best trial (``None`` before any complete one).
        best_value: Its value.
        best_params: The stage's own parameters of the best trial.
        pruned_at: Epoch at which each pruned trial stopped.
        diagnoses: Trials per LR diagnosis class.
        range_test: The LR range test the stage ran, if any (curve and suggestion).
        epochs_spent: Epochs its finished trials trained (pruned ones' partial epochs).
    """

    lineage: StageLineage
    counts: Mapping[str, int] = field(default_factory=dict)
    best_number: int | None = None
    best_value: float | None = None
    best_params: Mapping[str, Any] = field(default_factory=dict)
    pruned_at: Sequence[int] = ()
    diagnoses: Mapping[str, int] = field(default_factory=dict)
    range_test: Mapping[str, Any] | None = None
    epochs_spent: int = 0


def stage_started(study: optuna.Study, plan: Plan, index: int, *, metric: str) -> None:
    """Write the note of a stage that starts (and the search note on stage 1's study).

    Args:
        study: The stage's study, its lineage already written.
        plan: The search's plan.
        index: Position of the stage in the plan.
        metric: What the objective measures, e.g. ``"val_accuracy"``.
    """
    _update(study, plan, index, metric=metric)


def stage_finished(study: optuna.Study, plan: Plan, index: int, *, metric: str) -> None:
    """Update the notes when a stage has ended and its best is recorded."""
    _update(study, plan, index, metric=metric)


def _update(study: optuna.Study, plan: Plan, index: int, *, metric: str) -> None:
    import optuna

    lineage = read_lineage(study)
    if lineage is None:
        raise ValueError(f"Study {study.study_name!r} has no stagetune lineage to describe.")
    _name_metric(study, metric)
    storage = study._storage
    stages = search_stages(storage, lineage.search)
    studies = {
        lin.index: optuna.load_study(study_name=name, storage=storage) for name, lin in stages
    }
    facts = {lin.stage: read_facts(studies[lin.index]) for _, lin in stages}
    # The stage before, among those scored by the metric (an LR range test scores a loss).
    earlier = [facts.get(s.name) for s in plan.stages[:index]]
    previous = next((f for f in reversed(earlier) if f is not None and f.range_test is None), None)
    _save(study, _body(plan, index, facts, previous, metric, studies))
    if index != 0 and 0 in studies:
        _save(studies[0], _body(plan, 0, facts, None, metric, studies))


def _body(
    plan: Plan,
    index: int,
    facts: Mapping[str, StageFacts],
    previous: StageFacts | None,
    metric: str,
    studies: Mapping[int, optuna.Study],
) -> str:
    stage = plan.stages[index]
    body = stage_note(stage, facts[stage.name], previous, metric=metric, defaults=plan.defaults)
    if index != 0:
        return body
    attrs = studies[0].user_attrs
    search = search_note(
        plan,
        facts,
        search=facts[stage.name].lineage.search,
        task=str(attrs.get("stagetune_task", "?")),
        epochs=attrs.get("stagetune_epochs"),
        metric=metric,
    )
    return f"{search}\n\n---\n\n{body}"


def _name_metric(study: optuna.Study, metric: str) -> None:
    """Name the objective, so that the dashboard's axes say ``val_accuracy``."""
    import optuna

    if study.metric_names == [metric]:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])


def _save(study: optuna.Study, body: str) -> None:
    from optuna_dashboard import get_note, save_note

    if get_note(study) != body:
        save_note(study, body)


def read_facts(study: optuna.Study) -> StageFacts:
    """Count a stage study's trials, find its best and tally the LR diagnoses."""
    lineage = read_lineage(study)
    if lineage is None:
        raise ValueError(f"Study {study.study_name!r} has no stagetune lineage.")
    trials = study.get_trials(deepcopy=False)
    counts = Counter(trial.state.name for trial in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if complete:
        pick = max if study.direction.name == "MAXIMIZE" else min
        best = pick(complete, key=lambda t: t.value if t.value is not None else 0.0)
    pruned_at = [
        int(t.user_attrs["pruned_at_epoch"])
        for t in trials
        if t.state == TrialState.PRUNED and "pruned_at_epoch" in t.user_attrs
    ]
    diagnoses = Counter(label for t in trials if (label := trial_diagnosis(t.user_attrs)))
    return StageFacts(
        lineage=lineage,
        counts=dict(counts),
        best_number=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={}
        if best is None
        else {k: v for k, v in best.params.items() if k in lineage.searches},
        pruned_at=sorted(pruned_at),
        diagnoses=dict(diagnoses),
        range_test=find_range_test(study.user_attrs),
        epochs_spent=sum(
            trained_epochs(t)
            for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ),
    )


def _planned_budget(plan: Plan, stage: Stage) -> str:
    """A stage's budget before it starts: its part of the epoch budget, or its trials."""
    fractions = plan.stage_fractions() if plan.budget is not None else {}
    if stage.name in fractions:
        return f"{fractions[stage.name] * 100:.0f}% of {plan.budget} trial-equivalents"
    return str(stage.n_trials)


def trial_diagnosis(attrs: Mapping[str, Any]) -> str | None:
    """The LR diagnosis class in a trial's user attributes, if it has one.

    Example:
        >>> trial_diagnosis({"lr_diagnosis": "barely_moves"})
        'barely_moves'
    """
    for key in DIAGNOSIS_ATTRS:
        label = diagnosis_label(attrs.get(key))
        if label:
            return label
    return None


def find_range_test(attrs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The LR range test stored in a study's user attributes, if the stage ran one.

    Example:
        >>> find_range_test({"x": 1, "curve": {"lrs": [1e-5], "losses": [2.3]}})["lrs"]
        [1e-05]
    """
    found = attrs.get(RANGE_TEST_ATTR)
    if isinstance(found, Mapping):
        return found
    for value in attrs.values():
        if isinstance(value, Mapping) and "lrs" in value and "losses" in value:
            return value
    return None


def diagnosis_label(value: Any) -> str | None:
    """The class name of a trial's diagnosis attribute (a string or a mapping).

    Example:
        >>> diagnosis_label({"label": "healthy", "fix": ""})
        'healthy'
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        for key in ("label", "class", "kind", "name", "diagnosis"):
            if isinstance(value.get(key), str):
                return str(value[key])
        return None
    return str(value)


# -- rendering ------------------------------------------------------------------------


def stage_note(
    stage: Stage,
    facts: StageFacts,
    previous: StageFacts | None,
    *,
    metric: str,
    defaults: Mapping[str, Any],
) -> str:
    """The Markdown note of one stage.

    Args:
        stage: The stage, as planned (its reason and the ranges' sources).
        facts: What its study holds now.
        previous: The stage before it (``None`` for the first).
        metric: Name of the objective, e.g. ``"val_accuracy"``.
        defaults: The plan's defaults (the guide's step-1 values).

    Returns:
        Markdown for ``optuna_dashboard.save_note``.
    """
    lineage = facts.lineage
    state = "done" if lineage.done else "running"
    lines = [f"## Stage {lineage.index + 1} of {lineage.n_stages}: `{stage.name}` ({state})", ""]
    if stage.why:
        lines += [f"**Why:** {stage.why}", ""]
    lines += _searches_lines(stage, lineage, defaults)
    carried = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in sorted(lineage.carried.items()))
    lines += [f"**Carried in** (best of earlier stages): {carried or 'nothing, first stage'}."]
    fixed = sorted(k for k in defaults if k not in lineage.carried and k not in stage.param_names)
    if fixed:
        values = ", ".join(f"`{k}` = {_fmt(defaults[k])}" for k in fixed)
        lines += ["", f"**Fixed at the plan's defaults:** {values}."]
    lines += ["", "### Result", "", *_result_lines(facts, previous, metric)]
    return "\n".join(lines)


def _searches_lines(stage: Stage, lineage: StageLineage, defaults: Mapping[str, Any]) -> list[str]:
    if not stage.params:
        return ["**Searches:** no hyperparameter; this stage measures.", ""]
    ranks = ", ".join(f"`{p.name}` {_priority(p.name)}" for p in stage.params)
    lines = [
        f"**Searches:** {ranks}.",
        "",
        "| parameter | range | first trial | range from |",
        "|---|---|---|---|",
    ]
    for param in stage.params:
        spec = lineage.searches.get(param.name, param.to_dict())
        first = lineage.carried.get(param.name, defaults.get(param.name))
        source = param.source or "plan"
        lines.append(f"| `{param.name}` | {_range(spec)} | {_fmt(first)} | {source} |")
    return [*lines, ""]


def _range_test_lines(range_test: Mapping[str, Any]) -> list[str]:
    lrs = range_test.get("lrs") or []
    line = f"**LR range test:** {len(lrs)} steps"
    if lrs:
        line += f" from lr {_fmt(float(lrs[0]))} to {_fmt(float(lrs[-1]))}"
    if range_test.get("stop_reason"):
        line += f", stopped: {range_test['stop_reason']}"
    extras = [
        f"{label} {_fmt(range_test[key])}"
        for key, label in (("min_loss_lr", "min-loss lr"), ("steepest_lr", "steepest lr"))
        if isinstance(range_test.get(key), (int, float))
    ]
    if extras:
        line += f"; {', '.join(extras)}"
    suggestion = range_test.get("suggestion")
    if isinstance(suggestion, (int, float)):
        rule = range_test.get("rule")
        how = f" (rule `{rule}`, divided by {_fmt(range_test.get('divisor'))})" if rule else ""
        line += f"; suggested lr **{_fmt(float(suggestion))}**{how}"
    return ["", line + "."]


def _result_lines(facts: StageFacts, previous: StageFacts | None, metric: str) -> list[str]:
    lineage = facts.lineage
    count = facts.counts
    finished = count.get("COMPLETE", 0) + count.get("PRUNED", 0)
    spent = (
        f"Epochs: {facts.epochs_spent}/{lineage.budget} of the stage's budget trained; trials: "
        f"{finished} finished"
        if lineage.budget_unit == "epochs"
        else f"Trials: {finished}/{lineage.budget} finished"
    )
    lines = [
        f"{spent}: {count.get('COMPLETE', 0)} complete, "
        f"{count.get('PRUNED', 0)} pruned, {count.get('FAIL', 0)} failed"
        + (f", {count['RUNNING']} running" if count.get("RUNNING") else "")
        + "."
    ]
    if facts.pruned_at:
        epochs = ", ".join(str(e) for e in facts.pruned_at)
        lines[-1] += f" Pruned at epoch(s) {epochs}."
    lines.append("")
    if facts.best_value is None:
        lines.append(f"Best {metric}: none yet.")
    else:
        params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in facts.best_params.items())
        line = f"Best {metric}: **{_fmt(facts.best_value)}** (trial {facts.best_number}"
        line += f", {params})" if params else ")"
        prev = None if previous is None else previous.best_value
        if facts.range_test is not None:  # its value is the sweep's loss, not the metric
            lines.pop()
            line, prev = f"Minimum of the smoothed training loss: {_fmt(facts.best_value)}", None
        if prev is not None:
            line += (
                f"; {_signed(facts.best_value - prev)} against the previous stage "
                f"`{previous.lineage.stage if previous else ''}` ({_fmt(prev)})"
            )
        lines.append(line + ".")
    if facts.range_test is not None:
        lines += _range_test_lines(facts.range_test)
    if facts.diagnoses:
        summary = ", ".join(f"{label}: {n}" for label, n in sorted(facts.diagnoses.items()))
        lines += ["", f"**LR diagnosis** (trials per class): {summary}."]
    return lines


def search_note(
    plan: Plan,
    facts: Mapping[str, StageFacts],
    *,
    search: str,
    task: str,
    epochs: Any,
    metric: str,
) -> str:
    """The search-level Markdown note: the plan, each stage's result, the final values.

    Args:
        plan: The search's plan.
        facts: What each started stage's study holds, by stage name.
        search: The search name.
        task: The task's name.
        epochs: Epochs per trial.
        metric: Name of the objective.

    Returns:
        Markdown; the first stage's study shows it above its stage note.
    """
    order = " → ".join(PRIORITY_ORDER)
    lines = [
        f"# Search `{search}`",
        "",
        f"A staged search by stagetune on task `{task}`, {epochs} epochs per trial, "
        f"profile `{plan.profile}`; every trial is scored by {metric}.",
        "",
        f"The guide's priority order: {order}. Each stage is one study "
        f"(`{search}/<stage>`) that searches its own parameters with everything tuned "
        "before it fixed.",
        "",
        f"| # | stage | searches | budget | status | best {metric} | change |",
        "|---|---|---|---|---|---|---|",
    ]
    previous: float | None = None
    final = dict(plan.defaults)
    all_done = True
    for number, stage in enumerate(plan.stages, start=1):
        fact = facts.get(stage.name)
        searches = ", ".join(f"`{n}`" for n in stage.param_names)
        if fact is None:
            all_done = False
            lines.append(
                f"| {number} | `{stage.name}` | {searches} | {_planned_budget(plan, stage)} "
                "| not started | | |"
            )
            continue
        count = fact.counts
        status = "done" if fact.lineage.done else "running"
        all_done = all_done and fact.lineage.done
        status += f" ({count.get('COMPLETE', 0)} complete, {count.get('PRUNED', 0)} pruned)"
        change = ""
        best = _fmt(fact.best_value) if fact.best_value is not None else ""
        if fact.range_test is not None:  # scored by a loss: show the LR it suggests
            suggestion = fact.range_test.get("suggestion")
            best = f"lr {_fmt(suggestion)} suggested" if suggestion is not None else ""
        elif fact.best_value is not None and previous is not None:
            change = _signed(fact.best_value - previous)
        unit = " epochs" if fact.lineage.budget_unit == "epochs" else ""
        lines.append(
            f"| {number} | `{stage.name}` | {searches} | {fact.lineage.budget}{unit} | {status} | "
            f"{best} | {change} |"
        )
        if fact.best_value is not None and fact.range_test is None:
            previous = fact.best_value
        final.update(fact.best_params)
    lines.append("")
    values = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in sorted(final.items()))
    title = "Final hyperparameters" if all_done else "Hyperparameters so far"
    lines.append(f"**{title}:** {values}.")
    return "\n".join(lines)


def _priority(name: str) -> str:
    key = _PRIORITY_NAMES.get(name)
    if key is None or key not in PRIORITY_ORDER:
        return "(not in the guide's priority order)"
    return f"(#{PRIORITY_ORDER.index(key) + 1} of {len(PRIORITY_ORDER)} in the priority order)"


def _range(spec: Mapping[str, Any]) -> str:
    if "choices" in spec:
        return "{" + ", ".join(_fmt(c) for c in spec["choices"]) + "}"
    scale = ", log" if spec.get("log") else ""
    return f"{_fmt(spec.get('low'))} – {_fmt(spec.get('high'))}{scale}"


def _signed(delta: float) -> str:
    return f"{delta:+.4g}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
