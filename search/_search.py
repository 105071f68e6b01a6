"""Running a plan stage by stage, each stage an Optuna study."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from objectives import StageObjective, Task, get_task
from search import _notes as notes
from spaces import Param, Plan, Stage, default_plan
from storage import (
    StageLineage,
    open_storage,
    read_lineage,
    recover_dead_trials,
    search_stages,
    study_name,
    write_lineage,
)
from storage import claim_trial as _claim_trial

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.storages import BaseStorage


#: Trials that count toward a stage's budget.
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SearchError(RuntimeError):
    """A search cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class StageSummary:
    """Where one stage stands.

    Attributes:
        name: Stage name.
        study_name: Its Optuna study, ``"<search>/<stage>"``.
        budget: Finished trials it needs.
        complete, pruned, failed, running, waiting: Trials by state.
        retried: Trials that re-run a trial whose worker died.
        best_value: Best metric so far (``None`` before any complete trial).
        best_params: The stage's own parameters of its best trial.
        done: The stage has its budget and its best is recorded.
    """

    name: str
    study_name: str
    budget: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    retried: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    done: bool = False

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


@dataclass(frozen=True)
class SearchResult:
    """What a finished search found: each stage's summary and the final values."""

    name: str
    stages: list[StageSummary]
    best_params: dict[str, Any]
    best_value: float | None


ProgressFactory = Callable[[Stage, int, int, int], "Progress"]


class Progress:
    """Progress of one stage; the default shows a tqdm bar on a terminal."""

    def __init__(self, stage: Stage, index: int, n_stages: int, finished: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=stage.n_trials,
            initial=finished,
            desc=f"stage {index + 1}/{n_stages} {stage.name}",
            unit="trial",
            disable=None,
            leave=True,
        )

    def update(self, finished: int, best: float | None) -> None:
        self._bar.n = finished
        if best is not None:
            self._bar.set_postfix(best=f"{best:.4f}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class StagedSearch:
    """Tune a task in the guide's order: one Optuna study per stage.

    Each stage's best values are carried into the next; the guide's default is
    the first trial of each stage; a stage ends when it has ``n_trials``
    finished (complete + pruned) trials in storage, so running the same search
    again resumes it and a finished search runs nothing.

    Args:
        plan: The stages and defaults; ``None`` takes the task's profile.
        task: A :class:`objectives.Task` or the name of a built-in task.
        storage: Storage URL, SQLite path, Optuna storage, or ``None`` for
            ``sqlite:///stagetune.db``.
        name: Search name; stage studies are ``"<name>/<stage>"``.
        epochs: Epochs per trial (default: the task's).
        seed: Base seed for samplers and for each trial's torch seed.
        device: Torch device; CUDA when available by default.
        progress: A factory for per-stage progress, or ``None`` for none.

    Example:
        >>> from search import StagedSearch
        >>> from spaces import default_plan
        >>> import tempfile, os
        >>> db = os.path.join(tempfile.mkdtemp(), "s.db")
        >>> search = StagedSearch(default_plan("mlp", n_trials=2), "digits-mlp",
        ...                       storage=db, name="doc", epochs=2, progress=None)
        >>> [s.finished for s in search.run().stages]
        [2, 2, 2]
    """

    def __init__(
        self,
        plan: Plan | None = None,
        task: Task | str = "digits-mlp",
        *,
        storage: str | BaseStorage | None = None,
        name: str | None = None,
        epochs: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
        progress: ProgressFactory | None = Progress,
    ) -> None:
        self.task = get_task(task) if isinstance(task, str) else task
        self.plan = plan if plan is not None else default_plan(self.task.profile)
        self.name = name or self.task.name
        study_name(self.name, "")  # validates the name
        self.epochs = epochs if epochs is not None else self.task.epochs
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise SearchError(f"epochs must be a positive integer, but got {self.epochs!r}.")
        self.seed = seed
        self.device = device
        self._progress = progress
        self._storage_arg = storage
        self._storage: BaseStorage | None = None

    # -- public --------------------------------------------------------------------

    @property
    def storage(self) -> BaseStorage:
        if self._storage is None:
            if self._storage_arg is None or isinstance(self._storage_arg, str):
                self._storage = open_storage(self._storage_arg)
            else:
                self._storage = self._storage_arg
        return self._storage

    def fingerprint(self) -> str:
        """Hash of what decides the trials: the plan, the task and the epochs."""
        text = json.dumps(
            {"plan": self.plan.fingerprint(), "task": self.task.name, "epochs": self.epochs},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run(self) -> SearchResult:
        """Run (or resume) every stage in order and return what was found."""
        carried: dict[str, tuple[Param, Any]] = {}
        summaries = []
        for index, stage in enumerate(self.plan.stages):
            summary = self._run_stage(index, stage, carried)
            summaries.append(summary)
            for param in stage.params:
                carried[param.name] = (param, summary.best_params[param.name])
        final = dict(self.plan.defaults)
        final.update({name: value for name, (_, value) in carried.items()})
        return SearchResult(self.name, summaries, final, summaries[-1].best_value)

    def status(self) -> list[StageSummary]:
        """Each stage's progress, read from storage."""
        return search_status(self.storage, self.name)

    @property
    def _metric(self) -> str:
        return f"val_{self.task.metric_name}"

    # -- one stage -----------------------------------------------------------------

    def _run_stage(
        self, index: int, stage: Stage, carried: Mapping[str, tuple[Param, Any]]
    ) -> StageSummary:
        fixed = {n: v for n, (_, v) in carried.items() if n not in stage.param_names}
        study = self._open_study(index, stage, fixed)
        lineage = StageLineage(
            search=self.name,
            stage=stage.name,
            index=index,
            n_stages=len(self.plan.stages),
            searches={p.name: p.to_dict() for p in stage.params},
            carried=fixed,
            budget=stage.n_trials,
            plan=self.fingerprint(),
        )
        existing = read_lineage(study)
        if existing is not None:
            self._check_same_plan(existing, lineage)
            if existing.done:
                return summarize(study, existing)
        write_lineage(study, lineage)
        if index == 0:
            self._write_search_attrs(study)
        notes.stage_started(study, self.plan, index, metric=self._metric)
        recover_dead_trials(study)
        if not study.trials:
            study.enqueue_trial(self._first_trial(stage, carried))

        objective = StageObjective(
            task=self.task,
            searched=stage.params,
            carried=tuple(p for n, (p, _) in carried.items() if n in fixed),
            defaults=self.plan.defaults,
            epochs=self.epochs,
            device=_device(self.device),
            seed=self.seed,
        )
        self._optimize(study, stage, index, objective)
        summary = summarize(study, lineage)
        if summary.best_value is None:
            raise SearchError(
                f"Stage {stage.name!r} of search {self.name!r} finished without a complete "
                f"trial (all {summary.pruned} pruned): check the task and its ranges with "
                f"`stagetune status --name {self.name}`."
            )
        done = StageLineage(
            **{
                **lineage.__dict__,
                "done": True,
                "best_params": summary.best_params,
                "best_value": summary.best_value,
            }
        )
        write_lineage(study, done)
        notes.stage_finished(study, self.plan, index, metric=self._metric)
        return summarize(study, done)

    def _open_study(self, index: int, stage: Stage, fixed: Mapping[str, Any]) -> optuna.Study:
        import optuna

        sampler: optuna.samplers.BaseSampler = stage.sampler.build(stage, seed=self.seed + index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if fixed:
                sampler = optuna.samplers.PartialFixedSampler(dict(fixed), sampler)
            return optuna.create_study(
                storage=self.storage,
                study_name=study_name(self.name, stage.name),
                direction=self.task.direction,
                sampler=sampler,
                pruner=stage.pruner.build(self.epochs),
                load_if_exists=True,
            )

    def _check_same_plan(self, existing: StageLineage, lineage: StageLineage) -> None:
        if existing.plan != lineage.plan or existing.index != lineage.index:
            raise SearchError(
                f"Search {self.name!r} exists in this storage with another plan, task or "
                f"epoch count (stage {lineage.stage!r}); resume it with the same settings, "
                f"or start a new search with another --name."
            )

    def _write_search_attrs(self, study: optuna.Study) -> None:
        attrs = {
            "stagetune_task": self.task.name,
            "stagetune_epochs": self.epochs,
            "stagetune_plan_spec": self.plan.to_dict(),
        }
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)

    def _first_trial(
        self, stage: Stage, carried: Mapping[str, tuple[Param, Any]]
    ) -> dict[str, Any]:
        """The guide's default (or the value carried in) for each searched parameter."""
        first = {}
        for param in stage.params:
            value = carried[param.name][1] if param.name in carried else None
            if value is None:
                value = self.plan.defaults.get(param.name)
            if value is not None and param.contains(value):
                first[param.name] = value
        return first

    def _optimize(
        self, study: optuna.Study, stage: Stage, index: int, objective: StageObjective
    ) -> None:
        def finished() -> int:
            return len(study.get_trials(deepcopy=False, states=_FINISHED))

        def objective_with_claim(trial: optuna.Trial) -> float:
            _claim_trial(trial)
            return objective(trial)

        progress = (
            None
            if self._progress is None
            else self._progress(stage, index, len(self.plan.stages), finished())
        )

        def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress is not None:
                complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                progress.update(finished(), study.best_value if complete else None)

        try:
            # Bounded: every round runs at least one trial; failed trials (a worker
            # died) are re-queued with the same params by the storage's callback.
            for _ in range(2 * stage.n_trials + 2):
                remaining = stage.n_trials - finished()
                if remaining <= 0:
                    break
                study.optimize(objective_with_claim, n_trials=remaining, callbacks=[on_trial_end])
            else:
                raise SearchError(
                    f"Stage {stage.name!r} did not reach its budget of {stage.n_trials} "
                    f"finished trials; see `stagetune status --name {self.name}`."
                )
        finally:
            if progress is not None:
                progress.close()


def _device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    import torch

    return torch.device(device)


def summarize(study: optuna.Study, lineage: StageLineage) -> StageSummary:
    """Count a stage study's trials by state and read its best."""
    trials = study.get_trials(deepcopy=False)
    count = {state: 0 for state in TrialState}
    for trial in trials:
        count[trial.state] += 1
    best_value = None
    best_params: dict[str, Any] = {}
    if count[TrialState.COMPLETE]:
        best = study.best_trial
        best_value = best.value
        best_params = {k: v for k, v in best.params.items() if k in lineage.searches}
    return StageSummary(
        name=lineage.stage,
        study_name=study.study_name,
        budget=lineage.budget,
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        waiting=count[TrialState.WAITING],
        retried=sum(1 for t in trials if "failed_trial" in t.system_attrs),
        best_value=best_value,
        best_params=best_params,
        done=lineage.done,
    )


def search_status(storage: BaseStorage, name: str) -> list[StageSummary]:
    """Each stage of search ``name`` in ``storage``, in plan order."""
    import optuna

    stages = search_stages(storage, name)
    if not stages:
        raise SearchError(
            f"No search named {name!r} in this storage; `stagetune run --name {name}` starts it."
        )
    return [
        summarize(optuna.load_study(study_name=study, storage=storage), lineage)
        for study, lineage in stages
    ]
