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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagetune.search._format import edge_lines, fmt, fmt_range, fmt_signed
from stagetune.search._read import StageSummary, summarize
from stagetune.spaces import PRIORITY_ORDER, Plan, Stage
from stagetune.storage import (
    SearchSettings,
    StageLineage,
    StudyAttr,
    read_lineage,
    search_stages,
)

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
    facts = {lin.stage: summarize(studies[lin.index], lin) for _, lin in stages}
    # The stage before, among those scored by the metric (an LR range test scores a loss).
    earlier = [facts.get(s.name) for s in plan.stages[:index]]
    previous = next((f for f in reversed(earlier) if f is not None and f.range_test is None), None)
    _save(study, _body(plan, index, facts, previous, metric, studies))
    if index != 0 and 0 in studies:
        _save(studies[0], _body(plan, 0, facts, None, metric, studies))


def _body(
    plan: Plan,
    index: int,
    facts: Mapping[str, StageSummary],
    previous: StageSummary | None,
    metric: str,
    studies: Mapping[int, optuna.Study],
) -> str:
    stage = plan.stages[index]
    body = stage_note(stage, facts[stage.name], previous, metric=metric, defaults=plan.defaults)
    edges = edge_lines(studies[index].user_attrs.get(StudyAttr.RANGE_EDGES) or {})
    if edges:
        body += "\n\n" + "\n".join(f"**At the edge:** {line}." for line in edges)
    if index != 0:
        return body
    settings = SearchSettings.from_attrs(studies[0].user_attrs)
    search = search_note(
        plan,
        facts,
        search=facts[stage.name].lineage.search,
        task=settings.task if settings is not None else "?",
        epochs=settings.epochs if settings is not None else None,
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


def _planned_budget(plan: Plan, stage: Stage) -> str:
    """A stage's budget before it starts: its part of the epoch budget, or its trials."""
    fractions = plan.stage_fractions() if plan.budget is not None else {}
    if stage.name in fractions:
        return f"{fractions[stage.name] * 100:.0f}% of {plan.budget} trial-equivalents"
    return str(stage.n_trials)


# -- rendering ------------------------------------------------------------------------


def stage_note(
    stage: Stage,
    facts: StageSummary,
    previous: StageSummary | None,
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
    carried = ", ".join(f"`{k}` = {fmt(v)}" for k, v in sorted(lineage.carried.items()))
    lines += [f"**Carried in** (best of earlier stages): {carried or 'nothing, first stage'}."]
    fixed = sorted(k for k in defaults if k not in lineage.carried and k not in stage.param_names)
    if fixed:
        values = ", ".join(f"`{k}` = {fmt(defaults[k])}" for k in fixed)
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
        lines.append(f"| `{param.name}` | {fmt_range(spec)} | {fmt(first)} | {source} |")
    return [*lines, ""]


def _range_test_lines(range_test: Mapping[str, Any]) -> list[str]:
    lrs = range_test.get("lrs") or []
    line = f"**LR range test:** {len(lrs)} steps"
    if lrs:
        line += f" from lr {fmt(float(lrs[0]))} to {fmt(float(lrs[-1]))}"
    if range_test.get("stop_reason"):
        line += f", stopped: {range_test['stop_reason']}"
    extras = [
        f"{label} {fmt(range_test[key])}"
        for key, label in (("min_loss_lr", "min-loss lr"), ("steepest_lr", "steepest lr"))
        if isinstance(range_test.get(key), (int, float))
    ]
    if extras:
        line += f"; {', '.join(extras)}"
    suggestion = range_test.get("suggestion")
    if isinstance(suggestion, (int, float)):
        rule = range_test.get("rule")
        how = f" (rule `{rule}`, divided by {fmt(range_test.get('divisor'))})" if rule else ""
        line += f"; suggested lr **{fmt(float(suggestion))}**{how}"
    return ["", line + "."]


def _result_lines(facts: StageSummary, previous: StageSummary | None, metric: str) -> list[str]:
    spent = (
        f"Epochs: {facts.epochs_spent}/{facts.budget} of the stage's budget trained; trials: "
        f"{facts.finished} finished"
        if facts.budget_unit == "epochs"
        else f"Trials: {facts.finished}/{facts.budget} finished"
    )
    lines = [
        f"{spent}: {facts.complete} complete, "
        f"{facts.pruned} pruned, {facts.failed} failed"
        + (f", {facts.running} running" if facts.running else "")
        + "."
    ]
    if facts.pruned_at:
        epochs = ", ".join(str(e) for e in facts.pruned_at)
        lines[-1] += f" Pruned at epoch(s) {epochs}."
    lines.append("")
    if facts.best_value is None:
        lines.append(f"Best {metric}: none yet.")
    else:
        params = ", ".join(f"`{k}` = {fmt(v)}" for k, v in facts.best_params.items())
        line = f"Best {metric}: **{fmt(facts.best_value)}** (trial {facts.best_number}"
        line += f", {params})" if params else ")"
        prev = None if previous is None else previous.best_value
        if facts.range_test is not None:  # its value is the sweep's loss, not the metric
            lines.pop()
            line, prev = f"Minimum of the smoothed training loss: {fmt(facts.best_value)}", None
        if prev is not None:
            line += (
                f"; {fmt_signed(facts.best_value - prev)} against the previous stage "
                f"`{previous.lineage.stage if previous else ''}` ({fmt(prev)})"
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
    facts: Mapping[str, StageSummary],
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
        status = "done" if fact.done else "running"
        all_done = all_done and fact.done
        status += f" ({fact.complete} complete, {fact.pruned} pruned)"
        change = ""
        best = fmt(fact.best_value) if fact.best_value is not None else ""
        if fact.range_test is not None:  # scored by a loss: show the LR it suggests
            suggestion = fact.range_test.get("suggestion")
            best = f"lr {fmt(suggestion)} suggested" if suggestion is not None else ""
        elif fact.best_value is not None and previous is not None:
            change = fmt_signed(fact.best_value - previous)
        unit = " epochs" if fact.budget_unit == "epochs" else ""
        lines.append(
            f"| {number} | `{stage.name}` | {searches} | {fact.lineage.budget}{unit} | {status} | "
            f"{best} | {change} |"
        )
        if fact.best_value is not None and fact.range_test is None:
            previous = fact.best_value
        final.update(fact.best_params)
    lines.append("")
    values = ", ".join(f"`{k}` = {fmt(v)}" for k, v in sorted(final.items()))
    title = "Final hyperparameters" if all_done else "Hyperparameters so far"
    lines.append(f"**{title}:** {values}.")
    return "\n".join(lines)


def _priority(name: str) -> str:
    key = _PRIORITY_NAMES.get(name)
    if key is None or key not in PRIORITY_ORDER:
        return "(not in the guide's priority order)"
    return f"(#{PRIORITY_ORDER.index(key) + 1} of {len(PRIORITY_ORDER)} in the priority order)"
