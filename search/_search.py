"""Running a plan stage by stage, each stage an Optuna study."""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.objectives import (
    DEFAULT_CHECKPOINT_EVERY,
    CheckpointPolicy,
    Task,
    TrainFunction,
    get_task,
    resolve_device,
)
from stagetune.search import _barrier, _stages
from stagetune.search import _notes as notes
from stagetune.search._budget import (
    CappedPruner,
    StageBudget,
    stage_budget,
    trial_equivalents,
)
from stagetune.search._errors import SearchError, SearchTimeout
from stagetune.search._read import SearchResult, StageSummary, search_status, summarize
from stagetune.search._resume import check_resume, delete_search
from stagetune.spaces import Param, Plan, Stage, default_plan
from stagetune.storage import (
    DEFAULT_MAX_AGE,
    SearchSettings,
    StageLineage,
    open_artifacts,
    open_storage,
    search_stages,
    study_name,
    write_attrs,
    write_settings,
)

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

#: A callback run after every finished trial, as ``study.optimize`` runs them.
TrialCallback = Callable[["optuna.Study", "FrozenTrial"], None]


@dataclass(frozen=True)
class OpenStage:
    """A stage that is open in storage and not done: what claiming its trials needs.

    Attributes:
        index: Its position in the plan.
        stage: The stage, with the ranges the stages before it decided.
        study: Its study (with the stage's sampler and pruner).
        plan: The plan with this stage as resolved (what its notes show).
        metric: The name of what its trials score.
        objective: Trains one of its trials.
        budget: What the stage may spend (finished trials, or trained epochs).
    """

    index: int
    stage: Stage
    study: optuna.Study
    plan: Plan
    metric: str
    objective: Any
    budget: StageBudget


#: ``factory(stage, index, n_stages, spent, total=..., unit=...)``: a stage's display.
ProgressFactory = Callable[..., "Progress"]


class Progress:
    """Progress of one stage; the default shows a tqdm bar on a terminal.

    Args:
        stage, index, n_stages: The stage and where it is in the plan.
        spent: What the stage spent already, in ``unit``.
        total: Its budget in ``unit`` (default: ``stage.n_trials``).
        unit: ``"trial"`` or ``"epoch"``.
    """

    def __init__(
        self,
        stage: Stage,
        index: int,
        n_stages: int,
        spent: int,
        *,
        total: int | None = None,
        unit: str = "trial",
    ) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=stage.n_trials if total is None else total,
            initial=spent,
            desc=f"stage {index + 1}/{n_stages} {stage.name}",
            unit=unit,
            disable=None,
            leave=True,
        )

    def update(self, spent: int, best: float | None) -> None:
        self._bar.n = spent
        if best is not None:
            self._bar.set_postfix(best=f"{best:.4f}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class StagedSearch:
    """Tune a task in the guide's order: one Optuna study per stage.

    Each stage's best values are carried into the next; the guide's default is
    the first trial of each stage. A plan with an epoch ``budget`` gives each stage
    with a share its part of ``budget x epochs`` trained epochs, and a stage ends
    when its trials trained it (``search._budget``: pruned trials' unspent epochs
    fund more trials; exact with any number of workers); other stages end when
    they have ``n_trials`` finished (complete + pruned) trials. Both are counted in
    storage, so running the same search again resumes it and a finished search
    runs nothing.

    Args:
        plan: The stages and defaults; ``None`` takes the task's profile.
        task: A :class:`stagetune.objectives.Task`, the name of a built-in task, or your
            own as ``"module:attribute"`` / ``"path/to/file.py:attribute"``; default
            ``"digits-mlp"`` unless ``train`` is given.
        train: Your own training loop instead of a task: a function
            ``fn(params, ctx) -> float`` or a :class:`stagetune.objectives.TrainFunction`
            (which names its metric, direction and range-test loop; a bare function
            minimizes, as Optuna does). Without a range-test loop the plan's
            ``lr_range_test`` stage is left out and the next stage's note says so.
        storage: Storage URL, SQLite path, Optuna storage, or ``None`` for
            ``sqlite:///stagetune.db``.
        name: Search name; stage studies are ``"<name>/<stage>"``.
        epochs: Epochs per trial (default: the task's).
        seed: Base seed for samplers and for each trial's torch seed. Stage ``k``'s
            trial ``n`` trains with torch seed ``seed + offset_k + n``, where
            ``offset_k`` counts the trials of the stages before it
            (:meth:`seed_offset`): the search's trials get distinct seeds
            ``seed, seed + 1, ...`` in the order they run, as a joint search's do.
        device: Torch device (``"cpu"``, ``"cuda:1"``, ...), checked against the
            machine's devices here; ``None``: CUDA when available, else the CPU.
        progress: A factory for per-stage progress, or ``None`` for none.
        max_age: A RUNNING trial with no heartbeat that started longer ago than
            this is taken as orphaned (left by a run without heartbeat).
        artifacts: Where the final run's model and the trials' checkpoints go: a
            directory, an ``s3://``/``gs://`` bucket URL, or any Optuna artifact store;
            ``None``: ``<database>-artifacts/`` beside a SQLite database (no default for
            other databases: then nothing is kept).
        checkpoint_every: Seconds between a trial's checkpoints (at epoch ends; ``0``:
            every epoch); ``None``: no checkpoints.
        trial_timeout: Seconds of training after which a search trial is pruned, with
            the reason in its ``prune_reason`` (the final run has no limit).
        timeout: Seconds after which no new trial starts; ``run`` then raises
            :class:`SearchTimeout` and running the search again resumes it.
        callbacks: Called with ``(study, frozen_trial)`` after every trial this process
            finishes (as ``study.optimize`` calls them), in every worker: optuna-integration's
            ``MLflowCallback``, ``WeightsAndBiasesCallback``, ...

    Example:
        >>> from search import StagedSearch
        >>> from spaces import default_plan
        >>> import tempfile, os
        >>> db = os.path.join(tempfile.mkdtemp(), "s.db")
        >>> search = StagedSearch(default_plan("mlp", n_trials=2), "digits-mlp",
        ...                       storage=db, name="doc", epochs=2, progress=None)
        >>> [s.finished for s in search.run().stages]
        [1, 2, 2, 2, 1]
    """

    def __init__(
        self,
        plan: Plan | None = None,
        task: Task | str | None = None,
        *,
        train: TrainFunction | Callable[..., Any] | None = None,
        storage: str | BaseStorage | None = None,
        name: str | None = None,
        epochs: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
        progress: ProgressFactory | None = Progress,
        max_age: timedelta = DEFAULT_MAX_AGE,
        artifacts: str | ArtifactStore | None = None,
        checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY,
        trial_timeout: float | None = None,
        timeout: float | None = None,
        callbacks: Sequence[TrialCallback] = (),
    ) -> None:
        self.task = _trainee(task, train)
        self.plan = plan if plan is not None else task_plan(self.task)
        if isinstance(self.task, TrainFunction):
            self.plan = self.task.adapt_plan(self.plan)
        self.name = self.task.name if name is None else name
        study_name(self.name, "")  # validates the name
        self.epochs = epochs if epochs is not None else self.task.epochs
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise SearchError(f"epochs must be a positive integer, but got {self.epochs!r}.")
        self.seed = seed
        _check_seed(seed, self.plan)
        # Checked here, before any storage is opened: a device the machine lacks fails
        # with the devices it has, not with CUDA's AssertionError in the first trial.
        self.device = None if device is None else resolve_device(device)
        _stages.validate_plan(self.plan)  # bad values fail here, before any training
        self._progress = progress
        self.max_age = max_age
        self._storage_arg = storage
        self._storage: BaseStorage | None = None
        for option, value in (
            ("checkpoint_every", checkpoint_every),
            ("trial_timeout", trial_timeout),
            ("timeout", timeout),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise SearchError(f"{option} must be a number of seconds >= 0, got {value!r}.")
        if trial_timeout == 0 or timeout == 0:
            raise SearchError("trial_timeout and timeout must be > 0 seconds (None: no limit).")
        self.artifacts_arg = artifacts
        self.checkpoint_every = checkpoint_every
        self.trial_timeout = trial_timeout
        self.timeout = timeout
        self.callbacks = tuple(callbacks)
        #: When ``timeout`` ends, in ``time.time()`` seconds (set when the search starts;
        #: workers get their parent's).
        self.deadline: float | None = None
        self._parent_deadline = False

    # -- public --------------------------------------------------------------------

    @property
    def storage_arg(self) -> str | BaseStorage | None:
        """The storage as given (a URL keeps its ``${VAR}`` unexpanded)."""
        return self._storage_arg

    @property
    def storage(self) -> BaseStorage:
        if self._storage is None:
            if self._storage_arg is None or isinstance(self._storage_arg, str):
                self._storage = open_storage(self._storage_arg)
            else:
                self._storage = self._storage_arg
        return self._storage

    @property
    def artifacts(self) -> ArtifactStore | None:
        """The artifact store (``None``: none for this storage)."""
        if not hasattr(self, "_artifacts"):
            self._artifacts = open_artifacts(self.artifacts_arg, self._storage_arg)
        return self._artifacts

    def start_clock(self) -> None:
        """Start the ``timeout`` now (each ``run`` starts it anew; a worker's copy keeps
        its parent's deadline, so all workers stop together)."""
        if self.timeout is not None and not self._parent_deadline:
            self.deadline = time.time() + self.timeout

    def fingerprint(self) -> str:
        """Hash of what decides the trials: the plan, the task and the epochs."""
        text = json.dumps(
            {"plan": self.plan.fingerprint(), "task": self.task.name, "epochs": self.epochs},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run(self) -> SearchResult:
        """Run (or resume) every stage in order and return what was found.

        Raises:
            SearchTimeout: ``timeout`` passed before the search finished.
        """
        self.start_clock()
        for step in self._walk():
            if isinstance(step, SearchResult):
                return step
            self._optimize(step.study, step.stage, step.index, step.objective, step.budget)
        raise AssertionError("unreachable: the walk ends with the result")

    def advance(self) -> OpenStage | SearchResult:
        """Walk the stages in order: carry forward those that are done, and return the
        first one that is not (opened in storage), or the result when all are done.

        What every worker does before it claims a trial (ask/tell clients too), so
        that it carries exactly what storage holds (see ``stagetune.search._barrier``).
        """
        return next(self._walk())

    def _walk(self) -> Iterator[OpenStage | SearchResult]:
        """Yield each stage that is not done, opened; close it when the caller comes
        back (its budget spent), carry its best forward; yield the result last."""
        carried: dict[str, tuple[Param, Any]] = {}
        summaries = []
        context = _stages.StageContext()
        spent: dict[str, int] = {}  # epochs each closed stage trained (budget step 2)
        for index, planned in enumerate(self.plan.stages):
            # the ranges the earlier stages decided (LR window, step 4's direction)
            stage = context.resolve(planned, carried, self.plan.defaults)
            budget = self.stage_budget(index, spent)
            entered = self._enter_stage(index, stage, carried, budget, context)
            if isinstance(entered, OpenStage):
                yield entered
                entered = self.close(entered)
            summaries.append(entered)
            spent[stage.name] = entered.epochs_spent
            for param in stage.params:
                carried[param.name] = (param, entered.best_params[param.name])
            context.finished(stage, self._load_study(entered.study_name))
        final = dict(self.plan.defaults)
        final.update({name: value for name, (_, value) in carried.items()})
        yield SearchResult(self.name, summaries, final, summaries[-1].best_value)

    def stage_budget(self, index: int, spent: Mapping[str, int]) -> StageBudget:
        """Stage ``index``'s budget, given the epochs the stages before it trained.

        Raises:
            SearchError: The stage's part of the epoch budget is less than a trial.
        """
        try:
            return stage_budget(self.plan, index, epochs=self.epochs, spent_before=spent)
        except ValueError as error:
            raise SearchError(f"Search {self.name!r}: {error}") from None

    def seed_offset(self, index: int) -> int:
        """What stage ``index`` adds to ``seed`` for its trials' torch seeds.

        The trials of the stages before it, so that the first trial of a stage
        does not repeat an earlier stage's seed: their ``n_trials`` when the plan
        counts trials, the trials stored in their studies when it has an epoch
        budget (the stages before ``index`` must have run).

        Args:
            index: The stage's position in the plan.

        Returns:
            The number of trials of stages ``0 .. index - 1``.
        """
        earlier = self.plan.stages[:index]
        if self.plan.budget is None:
            return sum(stage.n_trials for stage in earlier)
        return sum(
            len(self._load_study(study_name(self.name, s.name)).get_trials(deepcopy=False))
            for s in earlier
        )

    def status(self) -> list[StageSummary]:
        """Each stage's progress, read from storage."""
        return search_status(self.storage, self.name)

    @property
    def _metric(self) -> str:
        return f"val_{self.task.metric_name}"

    def prepare(self, *, new: bool = False) -> None:
        """Open the storage (creating its schema) and check that the search can resume.

        Args:
            new: Delete an existing search of this name first (refused while it has
                live workers), instead of failing when its plan differs.

        Raises:
            SearchError: The search exists with another plan, task or epoch count
                (and ``new`` is false), or it is running and ``new`` is true.
        """
        if new:
            delete_search(self.storage, self.name)
        else:
            check_resume(
                self.storage, self.name, fingerprint=self.fingerprint(), settings=self._settings()
            )

    def use_storage(self, storage: BaseStorage) -> None:
        """Use an opened storage of the same database (e.g. one without heartbeats)."""
        self._storage = storage

    def for_worker(self) -> StagedSearch:
        """A copy to send to a worker process: no open storage, no progress bars."""
        clone = copy.copy(self)
        clone._storage = None
        clone._progress = None
        clone.__dict__.pop("_artifacts", None)
        clone._parent_deadline = True
        return clone

    def result(self) -> SearchResult | None:
        """What the search found, read from storage; ``None`` until every stage is done."""
        stages = search_status(self.storage, self.name) if self._has_stages() else []
        if len(stages) != len(self.plan.stages) or not all(s.done for s in stages):
            return None
        final = dict(self.plan.defaults)
        for summary in stages:
            final.update(summary.best_params)
        return SearchResult(self.name, stages, final, stages[-1].best_value)

    def _has_stages(self) -> bool:
        return bool(search_stages(self.storage, self.name))

    # -- one stage -----------------------------------------------------------------

    def _load_study(self, name: str) -> optuna.Study:
        import optuna

        return optuna.load_study(study_name=name, storage=self.storage)

    def _enter_stage(
        self,
        index: int,
        stage: Stage,
        carried: Mapping[str, tuple[Param, Any]],
        budget: StageBudget,
        context: _stages.StageContext,
    ) -> OpenStage | StageSummary:
        """Open stage ``index`` in storage; its summary if it is done already."""
        fixed = {n: v for n, (_, v) in carried.items() if n not in stage.param_names}
        stage_attrs = context.attrs.get(stage.name)
        first = self._first_trial(stage, carried)
        reused = context.reused_trial(
            stage, first=first, carried=carried, fixed=fixed, defaults=self.plan.defaults
        )
        study = self._open_study(index, stage, fixed, budget)
        lineage = StageLineage(
            search=self.name,
            stage=stage.name,
            index=index,
            n_stages=len(self.plan.stages),
            searches={p.name: p.to_dict() for p in stage.params},
            carried=fixed,
            budget=budget.amount,
            budget_unit=budget.unit,
            plan=self.fingerprint(),
        )
        metric = _stages.metric_name(stage, self._metric)
        # notes show the ranges this stage searches (narrowed by the stages before it)
        plan = replace(
            self.plan,
            stages=tuple(stage if i == index else s for i, s in enumerate(self.plan.stages)),
        )

        def started() -> None:
            write_attrs(study, dict(stage_attrs or {}))
            if index == 0:
                write_settings(study, self._settings())
            notes.stage_started(study, plan, index, metric=metric)

        # Workers share the stage through storage (search._barrier): the lineage and
        # the first trial are written once; a stage another worker closed is skipped.
        stored = _barrier.open_stage(
            study,
            lineage,
            check=lambda existing: self._check_same_plan(existing, lineage),
            first_trial=first,
            reused=reused,
            on_open=started,
        )
        if stored.done:
            return summarize(study, stored)

        objective = _stages.build_objective(
            stage,
            task=self.task,
            carried=carried,
            fixed=fixed,
            plan=self.plan,
            epochs=self.epochs,
            device=self.device,
            seed=self.seed + self.seed_offset(index),
            artifacts=self.artifacts,
            checkpoints=self._checkpoints(),
            trial_timeout=self.trial_timeout,
        )
        return OpenStage(index, stage, study, plan, metric, objective, budget)

    def close(self, step: OpenStage) -> StageSummary:
        """Record a stage's best once its budget is spent (see ``_barrier.close_stage``)."""
        study, stage, index = step.study, step.stage, step.index

        def done(stored: StageLineage) -> StageLineage:
            summary = summarize(study, stored)
            if summary.best_value is None:
                raise SearchError(
                    f"Stage {stage.name!r} of search {self.name!r} finished without a "
                    f"complete trial (all {summary.pruned} pruned): check the task and its "
                    f"ranges with `stagetune status --name {self.name}`."
                )
            return replace(
                stored, done=True, best_params=summary.best_params, best_value=summary.best_value
            )

        def finished() -> None:
            _stages.stage_ended(stage, study)  # before the note, which reads what it writes
            notes.stage_finished(study, step.plan, index, metric=step.metric)

        # Every worker carries forward what storage holds, not what it computed.
        return summarize(study, _barrier.close_stage(study, done, on_close=finished))

    def _checkpoints(self) -> CheckpointPolicy | None:
        store = self.artifacts
        if store is None or self.checkpoint_every is None:
            return None
        return CheckpointPolicy(store, every=self.checkpoint_every)

    def _open_study(
        self, index: int, stage: Stage, fixed: Mapping[str, Any], budget: StageBudget
    ) -> optuna.Study:
        import optuna

        sampler: optuna.samplers.BaseSampler = stage.sampler.build(
            stage, seed=self.seed + index, trials=trial_equivalents(self.plan, stage.name)
        )
        pruner = stage.pruner.build(self.epochs)
        if budget.unit == "epochs":
            pruner = CappedPruner(pruner, self.epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if fixed:
                sampler = optuna.samplers.PartialFixedSampler(dict(fixed), sampler)
            return optuna.create_study(
                storage=self.storage,
                study_name=study_name(self.name, stage.name),
                direction=_stages.direction_for(stage, self.task),
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )

    def _check_same_plan(self, existing: StageLineage, lineage: StageLineage) -> None:
        if existing.plan != lineage.plan or existing.index != lineage.index:
            raise SearchError(
                f"Search {self.name!r} exists in this storage with another plan, task or "
                f"epoch count (stage {lineage.stage!r}); resume it with the same settings, "
                f"or start a new search with another --name."
            )

    def _settings(self) -> SearchSettings:
        return SearchSettings(task=self.task.name, epochs=self.epochs, plan=self.plan.to_dict())

    def _first_trial(
        self, stage: Stage, carried: Mapping[str, tuple[Param, Any]]
    ) -> dict[str, Any]:
        """The guide's default (or the value carried in) for each searched parameter."""
        if not _stages.first_trial(stage):
            return {}  # the range test records the LR it finds; a grid tries every point
        first = {}
        for param in stage.params:
            value = carried[param.name][1] if param.name in carried else None
            if value is None:
                value = self.plan.defaults.get(param.name)
            if value is not None and param.contains(value):
                first[param.name] = value
        return first

    def _optimize(
        self,
        study: optuna.Study,
        stage: Stage,
        index: int,
        objective: Callable[[optuna.Trial], float],
        budget: StageBudget,
    ) -> None:
        def spent() -> int:
            return budget.spent(study.get_trials(deepcopy=False))

        progress = (
            None
            if self._progress is None
            else self._progress(
                stage,
                index,
                len(self.plan.stages),
                spent(),
                total=budget.amount,
                unit=budget.unit[:-1],
            )
        )

        def on_progress() -> None:
            if progress is not None:
                complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                progress.update(spent(), study.best_value if complete else None)

        try:
            # Claims a slot before each trial, so that any number of workers end the
            # stage with exactly its budget; failed trials are re-queued with the
            # same params (storage.recover_dead_trials, search._trial).
            if not _barrier.run_trials(
                study,
                budget=budget,
                objective=objective,
                max_age=self.max_age,
                on_progress=on_progress,
                callbacks=self.callbacks,
                deadline=self.deadline,
            ):
                raise SearchError(
                    f"Stage {stage.name!r} did not reach its budget of {budget.amount} "
                    f"{what_spent(budget)}; see `stagetune status --name {self.name}`."
                )
        except _barrier.TimeoutReached:
            raise SearchTimeout(
                f"Search {self.name!r} stopped after its timeout of {self.timeout:g} s "
                f"(stage {stage.name!r}, {spent()}/{budget.amount} {what_spent(budget)}); "
                f"run it again to resume."
            ) from None
        finally:
            if progress is not None:
                progress.close()


def what_spent(budget: StageBudget) -> str:
    """What a stage budget counts, in words."""
    return "finished trials" if budget.unit == "trials" else "trained epochs"


#: Seeds NumPy (and so Optuna's samplers) accept: 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def _check_seed(seed: int, plan: Plan) -> None:
    """The base seed, and every seed derived from it, must be a valid NumPy seed:
    stage ``k``'s sampler takes ``seed + k`` and its trials ``seed + offset_k + n``."""
    last = MAX_SEED - sum(stage.n_trials for stage in plan.stages)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= last:
        raise SearchError(
            f"seed must be an integer from 0 to {last} (its trials use the seeds after it, "
            f"up to NumPy's largest, 2**32 - 1), but got {seed!r}."
        )


def _trainee(task: Task | str | None, train: Any) -> Task | TrainFunction:
    """The task or train function a search trains (exactly one of the two)."""
    if train is not None:
        if task is not None:
            raise SearchError("Give a task or a train function (train=...), not both.")
        return TrainFunction.of(train)
    if task is None:
        return get_task("digits-mlp")
    return get_task(task) if isinstance(task, str) else task


def task_plan(
    task: Task | TrainFunction, *, n_trials: int | None = None, budget: int | None = None
) -> Plan:
    """The default plan of the task's profile (``n_trials`` / ``budget``: see
    :func:`stagetune.spaces.default_plan`).

    A task may name a profile this version does not define yet; it then gets
    the ``mlp`` profile's plan, which trains any model.
    """
    from stagetune.spaces import PROFILES

    profile = task.profile if task.profile in PROFILES else "mlp"
    return default_plan(profile, n_trials=n_trials, budget=budget)
