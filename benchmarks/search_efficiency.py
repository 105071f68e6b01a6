"""Staged vs joint vs random search at equal compute, counted in trained epochs.

Run by hand (not in CI)::

    .venv/bin/python benchmarks/search_efficiency.py --preset reduced   # ~10 min on 2 cores
    .venv/bin/python benchmarks/search_efficiency.py --preset full      # the issue's scale
    .venv/bin/python benchmarks/search_efficiency.py --report-only      # table + plot again
    .venv/bin/python benchmarks/search_efficiency.py --preset full --variant reuse
        # the staged jobs with one change to the plan (VARIANTS), into variants/reuse/,
        # compared seed by seed with the plan's own runs (variants/reuse.md)
    .venv/bin/python benchmarks/search_efficiency.py --preset full --out after --against before
        # every method after a change minus the same jobs before it (after/comparison.md)

For every task and seed it runs each method on the same budget of ``B`` trained
epochs (``B`` = trial-equivalents x epochs per trial):

- ``staged`` / ``staged-noprune``: stagetune's default plan for the task (its
  three search stages), run through :class:`stagetune.search.StagedSearch` with
  ``Plan.with_budget(trial-equivalents)``: the plan's stage shares split ``B``,
  each stage runs until its trials trained its part, and pruned trials' unspent
  epochs fund more trials (``stagetune.search._budget``); it spends ``B``
  exactly. ``staged-noprune`` sets every stage's pruner to ``none``.
- ``tpe`` / ``tpe-noprune``: Optuna's TPE over the union of the plan's search
  spaces at once (same ranges, same defaults for everything else), with
  ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)`` or none;
  ``n_startup_trials`` is a third of the trial-equivalents, the rule the plan's
  own TPE stages use.
- ``random`` / ``random-noprune``: random search over the same space, same pruner.

The joint methods run trials until ``B`` epochs are spent; the trial that would
overrun it is stopped (pruned) when the budget runs out, so they spend exactly
``B``, as the staged search's last stage does. A trial's epochs are its reported
steps, plus one for a trial ended by a non-finite loss in the epoch it did not
report (``trained_epochs``, the count the staged search's budget uses). Trial
``i`` (in the order trials run) trains with torch seed ``1000 * seed + i`` in
every method; the staged search gets this from ``StagedSearch.seed_offset``.

Scoring: after each trial its model is scored once on the task's held-out test
split (the models are built through a wrapper of ``build_model`` that keeps the
last model; the search never sees the test metric). At 25%, 50% and 100% of
``B`` each method's pick is its complete trial with the best validation metric
among the trials that ended by then; the table shows the pick's test metric
(median and min-max over seeds), its regret against the test metric of the
configuration with the best validation metric any method found on the task,
the epochs spent and the wall time. Paired: for each seed run by both, the
staged pick's test metric minus the other method's at the same fraction of the
same budget; the table gives the mean over seeds and a 90% percentile-bootstrap
interval of that mean. Raw results go to ``benchmarks/results/raw/*.json`` (one
per task x method x seed, so a run can be resumed or re-reported; a joint run is
deterministic, so earlier runs of it are reused), the table to
``search_efficiency.md`` and the plot (median best-so-far validation metric vs
epochs) to ``search_efficiency.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

if TYPE_CHECKING:
    import torch

    from stagetune.objectives import Task
    from stagetune.spaces import Param, Plan

RESULTS = ROOT / "benchmarks" / "results"
METHODS: tuple[str, ...] = (
    "staged",
    "staged-noprune",
    "tpe",
    "tpe-noprune",
    "random",
    "random-noprune",
)
FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)
#: The methods the staged search is compared with seed by seed.
PAIRED_WITH: tuple[str, ...] = ("tpe", "random", "tpe-noprune", "random-noprune")
#: Coverage of the paired intervals, and bootstrap resamples behind them.
INTERVAL = 0.9
RESAMPLES = 10_000
#: Fewer paired seeds than this: a bootstrap interval has too few distinct resamples
#: to say much (the table says so).
MIN_SEEDS = 5
#: Torch seeds of run ``s`` are ``SEED_STRIDE * s + i`` for its trial ``i``.
SEED_STRIDE = 1000


@dataclass(frozen=True)
class TaskBudget:
    """How one task is benchmarked.

    Args:
        task: Built-in task name.
        trials: Trial-equivalents: the budget is ``trials * epochs`` trained epochs.
        epochs: Epochs per trial (``None``: the task's own).
    """

    task: str
    trials: int
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, but got {self.trials!r}.")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None, but got {self.epochs!r}.")


@dataclass(frozen=True)
class Preset:
    """Tasks and their budgets, and how many seeds each method runs.

    Args:
        budgets: The tasks.
        seeds: Seeds of each method (seeds ``0 .. n - 1``); a method left out does not run.
    """

    budgets: tuple[TaskBudget, ...]
    seeds: dict[str, int]

    def with_seeds(self, n: int) -> Preset:
        """At most ``n`` seeds per method."""
        return Preset(self.budgets, {m: min(s, n) for m, s in self.seeds.items()})


_FULL_TASKS = (
    TaskBudget("digits-mlp", 30),
    TaskBudget("mnist1d-mlp", 30),
    TaskBudget("mnist1d-cnn", 30),
    TaskBudget("mnist1d-transformer", 12, epochs=10),
)
#: ``full``: the issue's scale (30 trial-equivalents at each task's epochs; the
#: transformer, 5x dearer per epoch than the CNN, 12 x 10): 10 seeds of staged, TPE and
#: random (with pruning), 5 of the unpruned joint searches (the reference of "reaches
#: unpruned TPE's final value"); ``staged-noprune`` is left out (pruning's savings are
#: now spent inside the budget). ``full-5``: the previous full run's 6 methods x 5
#: seeds. ``reduced``: 3 seeds at smaller budgets. ``smoke``: the test suite's.
PRESETS: dict[str, Preset] = {
    "full": Preset(
        _FULL_TASKS,
        {"staged": 10, "tpe": 10, "random": 10, "tpe-noprune": 5, "random-noprune": 5},
    ),
    "full-5": Preset(_FULL_TASKS, {m: 5 for m in METHODS}),
    "reduced": Preset(
        (
            TaskBudget("digits-mlp", 20, epochs=15),
            TaskBudget("mnist1d-mlp", 15, epochs=25),
            TaskBudget("mnist1d-cnn", 12, epochs=8),
            TaskBudget("mnist1d-transformer", 8, epochs=4),
        ),
        {m: 3 for m in METHODS},
    ),
    "smoke": Preset((TaskBudget("digits-mlp", 4, epochs=3),), {m: 1 for m in METHODS}),
}


@dataclass(frozen=True)
class Job:
    """One search: a task, a method and a seed, at a budget of trials x epochs."""

    task: str
    method: str
    seed: int
    trials: int
    epochs: int
    variant: str = ""

    @property
    def budget(self) -> int:
        return self.trials * self.epochs

    @property
    def key(self) -> str:
        return f"{self.task}__{self.method}__s{self.seed}"


# --- counting epochs --------------------------------------------------------------------


def trial_epochs(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs a finished trial trained, partial (pruned) trials included: the staged
    search's own count (its reported steps, plus one when a non-finite loss ended it in
    an epoch that it did not report)."""
    from stagetune.search import trained_epochs

    return trained_epochs(trial)


# --- the model and its test score -------------------------------------------------------


class TestScores:
    """Wraps a task's ``build_model`` to score each trial's model on the test split.

    ``build_model`` is called with torch seeded for the trial, so
    ``torch.initial_seed()`` names the trial; the previous model (whose training
    has ended when the next one is built) is scored then, the last by
    :meth:`flush`. Scores are keyed by torch seed.
    """

    def __init__(self, task: Task) -> None:
        self.base = task
        self.scores: dict[int, float] = {}
        self._last: tuple[int, torch.nn.Module] | None = None
        self.task = dataclasses.replace(task, build_model=self._build)

    def _build(self, params: Mapping[str, Any]) -> torch.nn.Module:
        import torch

        self.flush()
        model = self.base.build_model(params)
        self._last = (torch.initial_seed(), model)
        return model

    def flush(self) -> None:
        from stagetune.objectives import evaluate, load_splits

        if self._last is None:
            return
        seed, model = self._last
        self._last = None
        splits = load_splits(self.base)
        if splits.test is None:
            raise ValueError(f"task {self.base.name!r} has no test split to score on.")
        _, metric = evaluate(model, self.base, splits.test)
        self.scores[seed] = metric


# --- the methods --------------------------------------------------------------------------


def budget_plan(plan: Plan, trials: int, *, prune: bool) -> Plan:
    """The plan with an epoch budget of ``trials`` trial-equivalents (its stages'
    shares split it); without ``prune`` every stage's pruner is ``none``."""
    from stagetune.spaces import PrunerSpec

    budgeted = plan.with_budget(trials)
    if prune:
        return budgeted
    stages = tuple(dataclasses.replace(s, pruner=PrunerSpec("none")) for s in budgeted.stages)
    return dataclasses.replace(budgeted, stages=stages)


def joint_params(plan: Plan) -> tuple[Param, ...]:
    """Every parameter the plan's stages search, once (first stage's range wins)."""
    seen: dict[str, Param] = {}
    for stage in plan.stages:
        for param in stage.params:
            seen.setdefault(param.name, param)
    return tuple(seen.values())


class _BudgetPruner(optuna.pruners.BasePruner):
    """Delegates to ``inner``, and prunes every trial once the search spent its budget."""

    def __init__(self, inner: optuna.pruners.BasePruner, budget: int) -> None:
        self.inner = inner
        self.budget = budget
        self.spent_before = 0  # epochs of the trials finished before the running one

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self.spent_before + len(trial.intermediate_values) >= self.budget:
            step = trial.last_step
            return step is not None and step < _epochs_of(study)
        return bool(self.inner.prune(study, trial))


def _epochs_of(study: optuna.Study) -> int:
    return int(study.user_attrs["epochs"])


def run_joint(job: Job, task: Task, plan: Plan, *, sampler_kind: str, prune: bool) -> list[Any]:
    """Joint TPE or random search until ``job.budget`` epochs are spent; the study's trials."""
    import optuna

    from stagetune.objectives import StageObjective

    seed = SEED_STRIDE * job.seed
    if sampler_kind == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
            n_startup_trials=max(1, job.trials // 3), seed=seed
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    inner: optuna.pruners.BasePruner = (
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        if prune
        else optuna.pruners.NopPruner()
    )
    objective = StageObjective(
        task=task,
        searched=joint_params(plan),
        defaults=plan.defaults,
        epochs=job.epochs,
        device=_cpu(),
        seed=seed,
    )
    trials = search_until_spent(
        task, sampler, inner, objective, budget=job.budget, epochs=job.epochs
    )
    return [_trial_record(t, seed + t.number) for t in trials]


def search_until_spent(
    task: Task,
    sampler: optuna.samplers.BaseSampler,
    inner: optuna.pruners.BasePruner,
    objective: Callable[[optuna.Trial], float],
    *,
    budget: int,
    epochs: int,
    known: optuna.trial.FrozenTrial | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """Run ``objective`` in an in-memory study until its trials trained ``budget`` epochs
    (the trial that would overrun it is stopped, as pruned, when it runs out); the
    study's trials. ``known``: a result added first, trained nothing (not returned)."""
    import optuna

    pruner = _BudgetPruner(inner, budget)
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        direction=task.direction,
        sampler=sampler,
        pruner=pruner,
    )
    study.set_user_attr("epochs", epochs)
    if known is not None:
        study.add_trial(known)
    first = len(study.trials)
    # Bounded: every trial trains at least one epoch, so the budget ends the loop.
    for _ in range(budget + 1):
        if pruner.spent_before >= budget:
            break
        study.optimize(objective, n_trials=1)
        pruner.spent_before = sum(trial_epochs(t) for t in study.trials[first:])
    return study.trials[first:]


def _lr_successive_halving(plan: Plan) -> Plan:
    return _lr_pruner(plan, 1 / 9)


def _lr_successive_halving_late(plan: Plan) -> Plan:
    return _lr_pruner(plan, 1 / 3)


def _lr_pruner(plan: Plan, first_rung: float) -> Plan:
    from stagetune.spaces import PrunerSpec

    sh = PrunerSpec("successive_halving", warmup_fraction=first_rung)
    stages = tuple(dataclasses.replace(s, pruner=sh) if s.name == "lr" else s for s in plan.stages)
    return dataclasses.replace(plan, stages=stages)


def _reuse_incumbent(plan: Plan) -> Plan:
    stages = tuple(dataclasses.replace(s, incumbent="reuse") for s in plan.stages)
    return dataclasses.replace(plan, stages=stages)


def _lr_heavy_split(plan: Plan) -> Plan:
    shares = {"lr": 0.6, "weight_decay": 0.2, "regularization": 0.2}
    stages = tuple(
        dataclasses.replace(s, share=shares[s.name]) if s.name in shares else s
        for s in plan.stages
    )
    return dataclasses.replace(plan, stages=stages)


def _same(plan: Plan) -> Plan:
    return plan


@dataclass(frozen=True)
class Variant:
    """One change to the staged method, measured against it seed by seed.

    Attributes:
        about: What changes, for the variant's table.
        change: Takes the task's plan (its three search stages), returns the changed plan.
        refine: The budget's fraction (in whole trial-equivalents, at least one) kept
            from the stages for a joint refinement around the staged optimum at the end
            (:func:`run_refinement`); 0: none.
    """

    about: str
    change: Callable[[Plan], Plan] = _same
    refine: float = 0.0


#: Changes to the staged method measured against it seed by seed (``--variant``).
VARIANTS: dict[str, Variant] = {
    "lr-sh": Variant(
        "The LR stage prunes by successive halving (rungs at 1/9, 1/3 and all of a "
        "trial's epochs, a third promoted at each) instead of the median from 25%.",
        _lr_successive_halving,
    ),
    "lr-sh-third": Variant(
        "The LR stage prunes by successive halving from a third of a trial's epochs (the "
        "top third of the trials that reached it go on to the end) instead of the median "
        "from 25% after 3 full trials.",
        _lr_successive_halving_late,
    ),
    "reuse": Variant(
        "Each stage records the best configuration so far from the stage that trained it "
        '(``Stage.incumbent = "reuse"``) instead of training it again as its first trial.',
        _reuse_incumbent,
    ),
    "split-lr": Variant(
        "The stages split the budget 60/20/20 (learning rate / weight decay / "
        "regularization) instead of 45/27.5/27.5.",
        _lr_heavy_split,
    ),
    "refine": Variant(
        "The three stages spend 85% of the budget (in whole trial-equivalents); the rest "
        "goes to a joint TPE search of all their parameters at once, each narrowed around "
        "the staged optimum (log-scaled: within a factor of 3; linear: within a quarter of "
        "its range), with the joint searches' successive-halving pruner.",
        refine=0.15,
    ),
}

#: The refinement's neighbourhood: a log-scaled parameter within this factor of the
#: staged optimum, a linear one within this fraction of its range.
REFINE_FACTOR = 3.0
REFINE_WIDTH = 0.25


def refine_params(params: Sequence[Param], best: Mapping[str, Any]) -> tuple[Param, ...]:
    """``params``' float parameters narrowed around their values in ``best`` (clipped to
    their own ranges); a parameter whose neighbourhood is a single point is left out."""
    from stagetune.spaces import FloatParam

    narrowed: list[Param] = []
    for param in params:
        if not isinstance(param, FloatParam):
            continue
        value = float(best[param.name])
        if param.log:
            low, high = value / REFINE_FACTOR, value * REFINE_FACTOR
        else:
            width = REFINE_WIDTH * (param.high - param.low)
            low, high = value - width, value + width
        low, high = max(low, param.low), min(high, param.high)
        if low < high:
            narrowed.append(dataclasses.replace(param, low=low, high=high))
    return tuple(narrowed)


def run_refinement(
    job: Job, task: Task, plan: Plan, best: optuna.trial.FrozenTrial, *, budget: int, seed: int
) -> list[Any]:
    """A joint TPE search of the plan's parameters narrowed around ``best`` (the staged
    optimum), until ``budget`` epochs are spent; its trials. ``best`` enters the study
    as a known result (0 epochs, not returned), so the sampler starts from it."""
    import optuna

    from stagetune.objectives import StageObjective

    config = dict(best.user_attrs["config"])
    params = refine_params(joint_params(plan), config)
    known = optuna.trial.create_trial(
        params={p.name: config[p.name] for p in params},
        distributions={p.name: p.distribution() for p in params},
        value=best.value,
    )
    objective = StageObjective(
        task=task, searched=params, defaults=config, epochs=job.epochs, device=_cpu(), seed=seed
    )
    trials = search_until_spent(
        task,
        optuna.samplers.TPESampler(n_startup_trials=3, seed=seed),
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        objective,
        budget=budget,
        epochs=job.epochs,
        known=known,
    )
    return [_trial_record(t, seed + t.number, "refine") for t in trials]


def run_staged(job: Job, task: Task, plan: Plan, *, prune: bool) -> list[Any]:
    """The plan at the job's budget through ``StagedSearch`` (in-memory storage); its trials."""
    from stagetune.search import StagedSearch

    variant = VARIANTS[job.variant] if job.variant else Variant("")
    plan = variant.change(plan)
    refine_trials = max(1, round(variant.refine * job.trials)) if variant.refine else 0
    staged = budget_plan(plan, job.trials - refine_trials, prune=prune)
    seed = SEED_STRIDE * job.seed
    search = StagedSearch(
        staged,
        task,
        storage=optuna.storages.InMemoryStorage(),
        name=f"bench-{job.method}",
        epochs=job.epochs,
        seed=seed,
        device=_cpu(),
        progress=None,
    )
    search.run()
    from stagetune.storage import TrialSystemAttr

    records = []
    seeds: dict[tuple[str, int], int] = {}  # (study, trial number) -> torch seed
    best: tuple[optuna.trial.FrozenTrial, float] | None = None  # the staged optimum
    for index, stage in enumerate(staged.stages):
        name = f"{search.name}/{stage.name}"
        study = optuna.load_study(study_name=name, storage=search.storage)
        offset = seed + search.seed_offset(index)
        for t in study.trials:
            # a reused trial (Stage.incumbent) was trained, and is scored, as its source
            source = t.system_attrs.get(TrialSystemAttr.REUSED)
            own = offset + t.number
            seeds[name, t.number] = (
                own if source is None else seeds[source["study"], source["number"]]
            )
            records.append(_trial_record(t, seeds[name, t.number], stage.name))
            value = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
            if value is not None and (best is None or _better(task.direction, value, best[1])):
                best = (t, value)
    if refine_trials:
        if best is None:
            raise RuntimeError(f"{job.key}: no staged trial completed; nothing to refine.")
        spent = sum(r["epochs"] for r in records)
        records += run_refinement(
            job, task, plan, best[0], budget=job.budget - spent, seed=seed + len(records)
        )
    return records


def _trial_record(
    trial: optuna.trial.FrozenTrial, seed: int, stage: str | None = None
) -> dict[str, Any]:
    return {
        "number": trial.number,
        "stage": stage,
        "state": trial.state.name,
        "value": trial.value,
        "epochs": trial_epochs(trial),
        "epochs_run": trial.user_attrs.get("epochs_run"),
        "seed": seed,
        "config": trial.user_attrs.get("config"),
    }


def _cpu() -> torch.device:
    import torch

    return torch.device("cpu")


def run_job(job: Job, *, threads: int = 1) -> dict[str, Any]:
    """Run one search and return its trials (in the order they ran) with test scores."""
    import optuna
    import torch

    from stagetune.objectives import get_task
    from stagetune.search import task_plan
    from stagetune.spaces import core_plan

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    base = get_task(job.task)
    # the three search stages: the range test and the final run are not search budget
    plan = core_plan(task_plan(base).profile)
    scores = TestScores(base)
    start = time.perf_counter()
    if job.method.startswith("staged"):
        trials = run_staged(job, scores.task, plan, prune=not job.method.endswith("noprune"))
    else:
        kind = job.method.split("-")[0]
        trials = run_joint(
            job, scores.task, plan, sampler_kind=kind, prune=not job.method.endswith("noprune")
        )
    scores.flush()
    wall = time.perf_counter() - start
    for trial in trials:
        trial["test"] = scores.scores.get(trial["seed"]) if trial["state"] == "COMPLETE" else None
    return {
        "job": dataclasses.asdict(job),
        "budget": job.budget,
        "direction": base.direction,
        "metric": base.metric_name,
        "plan": [s.name for s in plan.stages],
        "trials": trials,
        "epochs_spent": sum(t["epochs"] for t in trials),
        "wall_s": wall,
    }


# --- analysis -------------------------------------------------------------------------------


def _better(direction: str, a: float, b: float) -> bool:
    return a > b if direction == "maximize" else a < b


def pick_at(run: Mapping[str, Any], epochs: float) -> dict[str, Any] | None:
    """The complete trial with the best validation metric among those ended by ``epochs``."""
    spent = 0
    best: dict[str, Any] | None = None
    for trial in run["trials"]:
        spent += trial["epochs"]
        if spent > epochs + 1e-9:
            break
        if trial["state"] != "COMPLETE" or trial["value"] is None:
            continue
        if best is None or _better(run["direction"], trial["value"], best["value"]):
            best = trial
    return best


def best_so_far(run: Mapping[str, Any]) -> list[tuple[int, float]]:
    """``(cumulative epochs, best validation so far)`` after each complete trial."""
    spent = 0
    points: list[tuple[int, float]] = []
    best: float | None = None
    for trial in run["trials"]:
        spent += trial["epochs"]
        value = trial["value"] if trial["state"] == "COMPLETE" else None
        if value is not None and (best is None or _better(run["direction"], value, best)):
            best = value
        if best is not None:
            points.append((spent, best))
    return points


def curve_value(points: Sequence[tuple[int, float]], epochs: float) -> float:
    """The best-so-far value at ``epochs`` (NaN before the first complete trial)."""
    value = math.nan
    for spent, best in points:
        if spent > epochs:
            break
        value = best
    return value


def median_curve(runs: Sequence[Mapping[str, Any]], grid: Sequence[float]) -> list[float]:
    """Median over runs of best-so-far validation at each grid point (NaN where none)."""
    curves = [best_so_far(r) for r in runs]
    out = []
    for x in grid:
        values = [curve_value(c, x) for c in curves]
        values = [v for v in values if not math.isnan(v)]
        out.append(statistics.median(values) if len(values) == len(runs) else math.nan)
    return out


def first_reach(
    runs: Sequence[Mapping[str, Any]], target: float, budget: int, direction: str
) -> int | None:
    """First epoch at which the runs' median best-so-far reaches ``target`` (None: never)."""
    grid = list(range(budget + 1))
    for x, value in zip(grid, median_curve(runs, grid), strict=True):
        if not math.isnan(value) and not _better(direction, target, value):
            return x
    return None


def load_runs(folder: Path, jobs: Sequence[Job] | None = None) -> list[dict[str, Any]]:
    """The raw results in ``folder``; with ``jobs``, only theirs (same budget and epochs)."""
    runs = []
    wanted = None if jobs is None else {dataclasses.astuple(j) for j in jobs}
    for path in sorted((folder / "raw").glob("*.json")):
        run = json.loads(path.read_text())
        if wanted is None or _job_of(run) in wanted:
            runs.append(run)
    return runs


def _job_of(run: Mapping[str, Any]) -> tuple[Any, ...]:
    return dataclasses.astuple(Job(**run["job"]))


def _fmt(values: Sequence[float | None], scale: float = 100.0) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    med = statistics.median(present) * scale
    if len(present) == 1:
        return f"{med:.1f}"
    return f"{med:.1f} [{min(present) * scale:.1f}-{max(present) * scale:.1f}]"


def bootstrap_mean(
    values: Sequence[float], *, level: float = INTERVAL, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap ``level`` interval.

    Resamples ``values`` with replacement ``resamples`` times (seeded, so the table is
    reproducible); one value has no interval (NaN ends).
    """
    if not values:
        raise ValueError("bootstrap_mean needs at least one value.")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, math.nan, math.nan
    rng = random.Random(seed)
    n = len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[math.floor(tail * (resamples - 1))]
    high = means[math.ceil((1 - tail) * (resamples - 1))]
    return mean, low, high


def paired(
    methods: Mapping[str, Sequence[Mapping[str, Any]]],
    budget: int,
    direction: str,
    against: Sequence[str] = PAIRED_WITH,
) -> dict[str, dict[str, Any]]:
    """Per other method (of ``against``) and fraction: staged minus it, seed by seed
    (positive: staged better, in test points), with the mean's bootstrap interval."""
    if "staged" not in methods:
        return {}
    sign = 1.0 if direction == "maximize" else -1.0
    staged = {r["job"]["seed"]: r for r in methods["staged"]}
    out: dict[str, dict[str, Any]] = {}
    for other in against:
        if other not in methods:
            continue
        theirs = {r["job"]["seed"]: r for r in methods[other]}
        row: dict[str, Any] = {}
        for fraction in FRACTIONS:
            diffs, seeds = [], []
            for seed in sorted(set(staged) & set(theirs)):
                mine = pick_at(staged[seed], fraction * budget)
                other_pick = pick_at(theirs[seed], fraction * budget)
                # No complete trial by then: no pick to compare (counted in n).
                if mine is None or other_pick is None:
                    continue
                if mine["test"] is None or other_pick["test"] is None:
                    continue
                diffs.append(sign * (mine["test"] - other_pick["test"]))
                seeds.append(seed)
            if not diffs:
                continue
            mean, low, high = bootstrap_mean(diffs)
            row[str(fraction)] = {
                "mean": mean,
                "low": low,
                "high": high,
                "n": len(diffs),
                "seeds": seeds,
                "diffs": diffs,
            }
        out[other] = row
    return out


def analyse(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per task and method: picks' test metric at each fraction, regret, epochs, wall time."""
    by_task: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for run in runs:
        job = run["job"]
        by_task.setdefault(job["task"], {}).setdefault(job["method"], []).append(run)
    out: dict[str, Any] = {}
    for task, methods in by_task.items():
        any_run = next(iter(methods.values()))[0]
        direction = any_run["direction"]
        budget = any_run["budget"]
        # The reference: the configuration with the best validation metric any run found.
        reference: dict[str, Any] | None = None
        for method_runs in methods.values():
            for run in method_runs:
                pick = pick_at(run, budget)
                if pick is not None and (
                    reference is None or _better(direction, pick["value"], reference["value"])
                ):
                    reference = pick
        rows = {}
        for method in [m for m in METHODS if m in methods]:
            method_runs = sorted(methods[method], key=lambda r: r["job"]["seed"])
            row: dict[str, Any] = {"seeds": [r["job"]["seed"] for r in method_runs]}
            for fraction in FRACTIONS:
                picks = [pick_at(r, fraction * budget) for r in method_runs]
                row[f"test@{fraction}"] = [None if p is None else p["test"] for p in picks]
                row[f"val@{fraction}"] = [None if p is None else p["value"] for p in picks]
            row["regret"] = [
                None
                if t is None or reference is None or reference["test"] is None
                else (reference["test"] - t if direction == "maximize" else t - reference["test"])
                for t in row["test@1.0"]
            ]
            row["epochs"] = [r["epochs_spent"] for r in method_runs]
            row["wall"] = [r["wall_s"] for r in method_runs]
            row["trials"] = [len(r["trials"]) for r in method_runs]
            row["pruned"] = [sum(t["state"] == "PRUNED" for t in r["trials"]) for r in method_runs]
            rows[method] = row
        out[task] = {
            "direction": direction,
            "budget": budget,
            "trials": any_run["job"]["trials"],
            "epochs_per_trial": any_run["job"]["epochs"],
            "metric": any_run["metric"],
            "plan": any_run["plan"],
            "reference": reference,
            "rows": rows,
            "paired": paired(methods, budget, direction),
            "targets": targets(methods, budget, direction),
        }
    return out


def targets(
    methods: Mapping[str, Sequence[Mapping[str, Any]]], budget: int, direction: str
) -> dict[str, Any]:
    """The issue's targets that can be read from one task's runs."""

    def med(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def final_vals(method: str) -> list[float | None]:
        return [None if (p := pick_at(r, budget)) is None else p["value"] for r in methods[method]]

    def tests(method: str, fraction: float) -> list[float | None]:
        return [
            None if (p := pick_at(r, fraction * budget)) is None else p["test"]
            for r in methods[method]
        ]

    result: dict[str, Any] = {}
    if "staged" in methods:
        spent = [r["epochs_spent"] / budget for r in methods["staged"]]
        result["staged_spent_fraction"] = {"min": min(spent), "median": statistics.median(spent)}
        result["staged_median_test"] = med(tests("staged", 1.0))
        beats = {}
        for other in ("tpe", "tpe-noprune", "random", "random-noprune"):
            if other not in methods:
                continue
            for fraction in FRACTIONS:
                mine, theirs = med(tests("staged", fraction)), med(tests(other, fraction))
                beats[f"{other}@{fraction}"] = (
                    mine is not None
                    and theirs is not None
                    and not _better(direction, theirs, mine)
                )
        result["staged_ge"] = beats
    if "staged" in methods and "tpe-noprune" in methods:
        goal = med(final_vals("tpe-noprune"))
        reach = None if goal is None else first_reach(methods["staged"], goal, budget, direction)
        result["staged_reaches_tpe_noprune_final_val"] = {
            "goal_val": goal,
            "epochs": reach,
            "fraction": None if reach is None else reach / budget,
        }
    savings = {}
    for pruned, full in (
        ("staged", "staged-noprune"),
        ("tpe", "tpe-noprune"),
        ("random", "random-noprune"),
    ):
        if pruned not in methods or full not in methods:
            continue
        goal = med(final_vals(full))
        reach = None if goal is None else first_reach(methods[pruned], goal, budget, direction)
        full_tests = [t for t in tests(full, 1.0) if t is not None]
        pruned_test = med(tests(pruned, 1.0))
        within = (
            pruned_test is not None
            and bool(full_tests)
            and not _better(
                direction,
                min(full_tests) if direction == "maximize" else max(full_tests),
                pruned_test,
            )
        )
        savings[pruned] = {
            "reach_epochs": reach,
            "saving": None if reach is None else 1 - reach / budget,
            "spent_fraction": statistics.median(r["epochs_spent"] for r in methods[pruned])
            / budget,
            "final_test_within_unpruned_spread": within,
        }
    result["pruning"] = savings
    return result


def markdown(analysis: Mapping[str, Any], *, command: str, note: str = "") -> str:
    """The results as a Markdown document."""
    lines = [
        "# Search efficiency: staged vs joint TPE vs random at equal epochs",
        "",
        f"Command: `{command}`",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        "Test metric (%) of each method's pick (best validation so far) at 25% / 50% / 100% "
        "of the epoch budget: median [min-max] over seeds. Regret: test points below the "
        "configuration with the best validation metric any method found on the task. "
        "Epochs: trained epochs actually spent (pruned trials' partial epochs included). "
        "Wall: median seconds per search.",
        "",
    ]
    for task, info in analysis.items():
        ref = info["reference"]
        ref_text = (
            "-" if ref is None else f"{ref['test'] * 100:.1f} (val {ref['value'] * 100:.1f})"
        )
        lines += [
            f"## {task}",
            "",
            f"Budget {info['budget']} epochs = {info['trials']} trial-equivalents x "
            f"{info['epochs_per_trial']} epochs; plan {' -> '.join(info['plan'])}; "
            f"reference config test {info['metric']} {ref_text}.",
            "",
            "| method | test @25% | test @50% | test @100% | regret @100% | epochs spent "
            "| trials (pruned) | wall s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, row in info["rows"].items():
            trials = statistics.median(row["trials"])
            pruned = statistics.median(row["pruned"])
            lines.append(
                f"| {method} | {_fmt(row['test@0.25'])} | {_fmt(row['test@0.5'])} | "
                f"{_fmt(row['test@1.0'])} | {_fmt(row['regret'])} | "
                f"{statistics.median(row['epochs']):.0f} | {trials:.0f} ({pruned:.0f}) | "
                f"{statistics.median(row['wall']):.0f} |"
            )
        lines.append("")
        lines += _paired_text(info)
        lines += _targets_text(info)
        lines.append("")
    return "\n".join(lines)


def compare_folders(new: Path, old: Path, jobs: Sequence[Job], *, command: str) -> str:
    """Each method's runs in ``new`` minus its runs in ``old`` (the same task, method, seed
    and budget; e.g. before and after a change to a guide range), seed by seed; the
    Markdown, also written to ``new/comparison.md``."""
    lines = [
        f"# `{new.name}` against `{old.name}`, seed by seed",
        "",
        f"Command: `{command} --against {old}`",
        "",
        "Test points of each method's pick in the new runs minus the same method's pick in "
        "the old runs, same seed and budget (> 0: the new runs better): mean [90% bootstrap "
        "interval] (seeds).",
        "",
    ]
    new_runs, old_runs = load_runs(new, jobs), load_runs(old, jobs)
    for task in sorted({r["job"]["task"] for r in new_runs}):
        lines += [f"## {task}", "", "| method | @25% | @50% | @100% |", "|---|---|---|---|"]
        for method in METHODS:
            mine = [
                r for r in new_runs if r["job"]["task"] == task and r["job"]["method"] == method
            ]
            theirs = [
                r for r in old_runs if r["job"]["task"] == task and r["job"]["method"] == method
            ]
            if not mine or not theirs:
                continue
            row = paired(
                {"staged": mine, "old": theirs},
                mine[0]["budget"],
                mine[0]["direction"],
                ("old",),
            )["old"]
            cells = " | ".join(_paired_cell(row.get(str(f))) for f in FRACTIONS)
            lines.append(f"| {method} | {cells} |")
        lines.append("")
    text = "\n".join(lines)
    (new / "comparison.md").write_text(text)
    return text


def _paired_cell(cell: Mapping[str, Any] | None) -> str:
    """``mean [low, high] (seeds)`` in test points, ``-`` where no seed was paired."""
    if cell is None:
        return "-"
    interval = (
        "[-]"
        if math.isnan(cell["low"])
        else f"[{cell['low'] * 100:+.2f}, {cell['high'] * 100:+.2f}]"
    )
    return f"{cell['mean'] * 100:+.2f} {interval} ({cell['n']})"


def _paired_text(info: Mapping[str, Any]) -> list[str]:
    rows = info.get("paired") or {}
    if not rows:
        return []
    lines = [
        f"Paired: staged minus each method, same seed and budget (test points; > 0: staged "
        f"better): mean [{INTERVAL * 100:.0f}% bootstrap interval] (seeds).",
        "",
        "| staged minus | @25% | @50% | @100% |",
        "|---|---|---|---|",
    ]
    for other, row in rows.items():
        lines.append(
            f"| {other} | " + " | ".join(_paired_cell(row.get(str(f))) for f in FRACTIONS) + " |"
        )
    lines.append("")
    return lines


def _targets_text(info: Mapping[str, Any]) -> list[str]:
    t = info["targets"]
    lines = []
    if "staged_spent_fraction" in t:
        spent = t["staged_spent_fraction"]
        lines.append(
            f"- staged spends {spent['min'] * 100:.1f}% of the epoch budget at least "
            f"(median {spent['median'] * 100:.1f}%): "
            f"{'met' if spent['min'] >= 0.98 else 'MISSED'} (target >= 98%)"
        )
    tpe = (info.get("paired") or {}).get("tpe", {})
    if tpe:
        cells = [tpe.get(str(f)) for f in FRACTIONS]
        ok = all(c is not None and c["mean"] >= 0 for c in cells)
        means = ", ".join("-" if c is None else f"{c['mean'] * 100:+.2f}" for c in cells)
        lines.append(
            f"- paired mean staged minus tpe >= 0 at 25/50/100% ({means}): "
            f"{'met' if ok else 'MISSED'}"
        )
        first = tpe.get(str(FRACTIONS[0]))
        above = first is not None and not math.isnan(first["low"]) and first["low"] > 0
        few = (
            f"; only {first['n']} seeds: too few for the interval to mean much"
            if first is not None and first["n"] < MIN_SEEDS
            else ""
        )
        lines.append(
            f"- its {INTERVAL * 100:.0f}% interval above 0 at 25%: {'yes' if above else 'no'} "
            f"(target: on at least two tasks{few})"
        )
    if "staged_ge" in t:
        misses = [k for k, ok in t["staged_ge"].items() if not ok]
        lines.append(
            "- staged median test >= every other search at 25/50/100%: "
            + ("met" if not misses else "MISSED vs " + ", ".join(misses))
        )
    if "staged_reaches_tpe_noprune_final_val" in t:
        r = t["staged_reaches_tpe_noprune_final_val"]
        if r["goal_val"] is not None:
            reach = (
                "never"
                if r["epochs"] is None
                else f"at {r['epochs']} epochs ({r['fraction'] * 100:.0f}% of the budget)"
            )
            ok = r["fraction"] is not None and r["fraction"] <= 0.33
            lines.append(
                f"- staged reaches tpe-noprune's final median val ({r['goal_val'] * 100:.1f}) "
                f"{reach}: {'met' if ok else 'MISSED'} (target <= 33%)"
            )
    for method, s in t.get("pruning", {}).items():
        reach = (
            "never"
            if s["reach_epochs"] is None
            else f"after {s['reach_epochs']} epochs (saves {s['saving'] * 100:.0f}%)"
        )
        ok = (
            s["saving"] is not None
            and s["saving"] >= 0.5
            and s["final_test_within_unpruned_spread"]
        )
        lines.append(
            f"- pruning, {method}: reaches the unpruned final median val {reach}; spends "
            f"{s['spent_fraction'] * 100:.0f}% of the budget; final test within the unpruned "
            f"seed spread: {'yes' if s['final_test_within_unpruned_spread'] else 'no'}: "
            f"{'met' if ok else 'MISSED'} (target: saves >= 50%)"
        )
    return lines


def plot(runs: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Median best-so-far validation metric vs epochs, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["job"]["task"] for r in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        task_runs = [r for r in runs if r["job"]["task"] == task]
        budget = task_runs[0]["budget"]
        grid = list(range(budget + 1))
        for method in METHODS:
            method_runs = [r for r in task_runs if r["job"]["method"] == method]
            if not method_runs:
                continue
            curve = [v * 100 for v in median_curve(method_runs, grid)]
            style = "-" if not method.endswith("noprune") else "--"
            ax.plot(grid, curve, style, label=method)
        ax.set_title(f"{task} ({budget} epochs)")
        ax.set_xlabel("trained epochs (pruned included)")
        ax.set_ylabel(f"best val {task_runs[0]['metric']} so far (%), median")
        ax.grid(alpha=0.3)
        values = [v * 100 for r in task_runs for _, v in best_so_far(r)]
        if values:
            ax.set_ylim(statistics.median(values) - 8, max(values) + 1)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- running -------------------------------------------------------------------------------


def make_jobs(preset: Preset, variant: str = "") -> list[Job]:
    """Every (task, method, seed) job, seed by seed: stopped early, a run leaves the
    largest complete set of paired seeds. With ``variant``, the staged jobs only, each
    running that variant of the plan."""
    from stagetune.objectives import get_task

    jobs = []
    for seed in range(max(preset.seeds.values(), default=0)):
        for budget in preset.budgets:
            epochs = budget.epochs or get_task(budget.task).epochs
            for method in METHODS:
                if variant and method != "staged":
                    continue
                if seed < preset.seeds.get(method, 0):
                    jobs.append(Job(budget.task, method, seed, budget.trials, epochs, variant))
    return jobs


def _run_and_save(job: Job, folder: str) -> str:
    result = run_job(job)
    path = Path(folder) / "raw" / f"{job.key}.json"
    path.write_text(json.dumps(result, indent=1))
    return job.key


def run_all(jobs: Sequence[Job], folder: Path, *, workers: int, resume: bool = True) -> None:
    """Run the jobs (skipping those with a result file when ``resume``) in a process pool."""
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    done = {_job_of(run) for run in load_runs(folder)} if resume else set()
    todo = [j for j in jobs if dataclasses.astuple(j) not in done]
    start = time.perf_counter()
    if workers <= 1:
        for job in todo:
            _run_and_save(job, str(folder))
            print(f"[{time.perf_counter() - start:7.0f}s] {job.key}", flush=True)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_and_save, job, str(folder)) for job in todo]
        for future in as_completed(futures):
            print(f"[{time.perf_counter() - start:7.0f}s] {future.result()}", flush=True)


def report(
    folder: Path,
    jobs: Sequence[Job] | None = None,
    *,
    command: str,
    note: str = "",
    stem: str = "search_efficiency",
) -> dict[str, Any]:
    """Write the table (``search_efficiency.md``, ``.json``) and the plot from the raw results.

    Args:
        folder: Where ``raw/`` is and where the outputs go.
        jobs: Only these jobs' results (``None``: every result there).
        command: The command line shown above the table.
        note: A line shown above the table.
        stem: The outputs' file name without its suffix.

    Returns:
        The analysis that the table shows.
    """
    runs = load_runs(folder, jobs)
    analysis = analyse(runs)
    (folder / f"{stem}.md").write_text(markdown(analysis, command=command, note=note))
    (folder / f"{stem}.json").write_text(json.dumps(analysis, indent=1, default=str))
    if runs:
        plot(runs, folder / f"{stem}.png")
    return analysis


def compare_variant(folder: Path, variant: str, jobs: Sequence[Job], *, command: str) -> str:
    """The variant's staged runs (``folder/variants/<variant>/raw``) against the plan's
    own (``folder/raw``) and the joint searches there, seed by seed; its Markdown."""
    variant_runs = load_runs(folder / "variants" / variant, jobs)
    # the plan's own staged runs and the joint searches of the same tasks, seeds and budgets
    wanted = {(j.task, j.seed, j.trials, j.epochs) for j in jobs}
    others = [
        r
        for r in load_runs(folder)
        if r["job"]["method"] in ("staged", "tpe", "random")
        and not r["job"].get("variant")
        and (r["job"]["task"], r["job"]["seed"], r["job"]["trials"], r["job"]["epochs"]) in wanted
    ]
    doc = VARIANTS[variant].about
    lines = [
        f"# Variant `{variant}` of the staged plan, seed by seed",
        "",
        f"Command: `{command}`",
        "",
        " ".join(doc.split()),
        "",
        "Test points of the variant's pick minus the other's, same seed and budget "
        "(> 0: the variant better): mean [90% bootstrap interval] (seeds). `staged`: the "
        "plan as it is.",
        "",
    ]
    tasks = sorted({r["job"]["task"] for r in variant_runs})
    for task in tasks:
        mine = [r for r in variant_runs if r["job"]["task"] == task]
        theirs = [r for r in others if r["job"]["task"] == task]
        methods: dict[str, list[Mapping[str, Any]]] = {"staged": mine}
        for run in theirs:
            name = "base" if run["job"]["method"] == "staged" else run["job"]["method"]
            methods.setdefault(name, []).append(run)
        rows = paired(methods, mine[0]["budget"], mine[0]["direction"], ("base", "tpe", "random"))
        spent = [r["epochs_spent"] / r["budget"] for r in mine]
        trials = statistics.median(len(r["trials"]) for r in mine)
        lines += [
            f"## {task}",
            "",
            f"Variant: {len(mine)} seeds, median {trials:g} trials, epochs spent "
            f"{100 * min(spent):.1f}-{100 * max(spent):.1f}% of the budget.",
            "",
            "| variant minus | @25% | @50% | @100% |",
            "|---|---|---|---|",
        ]
        for other, row in rows.items():
            label = "staged" if other == "base" else other
            lines.append(
                f"| {label} | "
                + " | ".join(_paired_cell(row.get(str(f))) for f in FRACTIONS)
                + " |"
            )
        lines.append("")
    text = "\n".join(lines)
    (folder / "variants" / f"{variant}.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    parser.add_argument(
        "--seeds", type=int, default=None, help="at most this many seeds per method"
    )
    parser.add_argument("--tasks", nargs="*", default=None, help="only these tasks")
    parser.add_argument(
        "--methods", nargs="*", default=None, choices=METHODS, help="only these methods"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fresh", action="store_true", help="ignore raw results already there")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="", help="a line for the top of the table")
    parser.add_argument(
        "--stem", default="search_efficiency", help="name of the .md/.json/.png written"
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="a results folder of the same jobs run before a change: compare each method "
        "seed by seed (OUT minus AGAINST)",
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default=None,
        help="run this variant of the staged plan (into OUT/variants/NAME) and compare it "
        "seed by seed with the plan's own staged runs and the joint searches in OUT",
    )
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.tasks:
        preset = Preset(tuple(b for b in preset.budgets if b.task in args.tasks), preset.seeds)
    if args.seeds is not None:
        preset = preset.with_seeds(args.seeds)
    if args.methods:
        preset = Preset(preset.budgets, {m: preset.seeds.get(m, 0) for m in args.methods})
    # The command that produces these results (``--report-only`` re-reads them).
    command = f".venv/bin/python benchmarks/search_efficiency.py --preset {args.preset}"
    if args.seeds is not None:
        command += f" --seeds {args.seeds}"
    if args.tasks:
        command += " --tasks " + " ".join(args.tasks)
    if args.methods:
        command += " --methods " + " ".join(args.methods)
    if args.variant:
        command += f" --variant {args.variant}"
        jobs = make_jobs(preset, args.variant)
        folder = args.out / "variants" / args.variant
        if not args.report_only:
            run_all(jobs, folder, workers=args.workers)
        print(compare_variant(args.out, args.variant, jobs, command=command.strip()))
        return 0
    jobs = make_jobs(preset)
    if not args.report_only:
        if args.fresh and (args.out / "raw").exists():
            for path in (args.out / "raw").glob("*.json"):
                path.unlink()
        started = time.perf_counter()
        run_all(jobs, args.out, workers=args.workers)
        print(f"all {len(jobs)} searches in {time.perf_counter() - started:.0f} s", flush=True)
    report(args.out, jobs, command=command.strip(), note=args.note, stem=args.stem)
    print((args.out / f"{args.stem}.md").read_text())
    if args.against is not None:
        print(compare_folders(args.out, args.against, jobs, command=command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
