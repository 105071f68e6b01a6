"""The read side of a search: its stage studies and one summary of each stage.

Everything here reads storage only, so ``status``, ``report``, ``export``, the dashboard
notes and a worker's progress bars work on a search that another process runs (or that
no longer runs). :class:`StageSummary` is the one account of a stage that all of them use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.search._budget import trained_epochs
from stagetune.search._errors import SearchError
from stagetune.storage import (
    StageLineage,
    StudyAttr,
    TrialAttr,
    TrialSystemAttr,
    find_orphans,
    read_lineage,
    search_stages,
)

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

#: Trial user attributes that may hold the wrong-LR diagnosis of the trial's loss curve
#: (a class name, or a mapping with a ``label``); the first one present counts.
DIAGNOSIS_ATTRS: tuple[str, ...] = (TrialAttr.LR_DIAGNOSIS, "diagnosis")


@dataclass(frozen=True)
class StageSummary:
    """Where one stage stands, read from its study.

    Attributes:
        name: Stage name.
        study_name: Its Optuna study, ``"<search>/<stage>"``.
        budget: What it may spend, in ``budget_unit``: finished trials, or trained
            epochs (its allowance of the search's epoch budget).
        complete, pruned, failed, running, waiting: Trials by state.
        retried: Trials that re-run a trial whose worker died.
        best_value: Best metric so far (``None`` before any complete trial); once the
            stage is done, the value recorded and carried forward.
        best_params: The stage's own parameters of its best trial.
        done: The stage has its budget and its best is recorded.
        orphaned: RUNNING trials whose worker is gone (the next worker fails
            and re-runs them); filled in by :func:`search_status`.
        lineage: What the stage study records about its place in the search.
        best_number: Number of the best trial (``None`` before any complete one).
        pruned_at: Epoch at which each pruned trial stopped, ascending.
        diagnoses: Trials per LR diagnosis class.
        range_test: The LR range test the stage ran, if any (curve and suggestion).
        epochs_spent: Epochs its finished trials trained (pruned trials' partial
            epochs included).
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
    orphaned: int = 0
    lineage: StageLineage = field(kw_only=True)
    best_number: int | None = field(default=None, kw_only=True)
    pruned_at: tuple[int, ...] = field(default=(), kw_only=True)
    diagnoses: dict[str, int] = field(default_factory=dict, kw_only=True)
    range_test: Mapping[str, Any] | None = field(default=None, kw_only=True)
    epochs_spent: int = field(default=0, kw_only=True)

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def index(self) -> int:
        """The stage's position in the plan (0-based)."""
        return self.lineage.index

    @property
    def budget_unit(self) -> str:
        """What ``budget`` counts: ``"trials"`` or ``"epochs"``."""
        return self.lineage.budget_unit

    @property
    def spent(self) -> int:
        """What the stage spent of its budget, in ``budget_unit``."""
        return self.epochs_spent if self.budget_unit == "epochs" else self.finished


@dataclass(frozen=True)
class SearchResult:
    """What a finished search found: each stage's summary and the final values."""

    name: str
    stages: list[StageSummary]
    best_params: dict[str, Any]
    best_value: float | None


def summarize(study: optuna.Study, lineage: StageLineage) -> StageSummary:
    """Count a stage study's trials by state, read its best, tally pruning epochs and
    LR diagnoses, and find its LR range test."""
    trials = study.get_trials(deepcopy=False)
    count = Counter(trial.state for trial in trials)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    best_value = None
    best_params: dict[str, Any] = {}
    best_number = None
    if count[TrialState.COMPLETE]:
        best = study.best_trial
        best_number = best.number
        best_value = best.value
        best_params = {k: v for k, v in best.params.items() if k in lineage.searches}
    if lineage.done and lineage.best_value is not None:
        # A closed stage: what was recorded (and carried forward), not a recount.
        best_value = lineage.best_value
        best_params = dict(lineage.best_params)
    pruned_at = sorted(
        int(t.user_attrs[TrialAttr.PRUNED_AT_EPOCH])
        for t in trials
        if t.state == TrialState.PRUNED and TrialAttr.PRUNED_AT_EPOCH in t.user_attrs
    )
    diagnoses = Counter(label for t in trials if (label := trial_diagnosis(t.user_attrs)))
    return StageSummary(
        name=lineage.stage,
        study_name=study.study_name,
        budget=lineage.budget,
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        waiting=count[TrialState.WAITING],
        retried=sum(1 for t in trials if TrialSystemAttr.FAILED_TRIAL in t.system_attrs),
        best_value=best_value,
        best_params=best_params,
        done=lineage.done,
        lineage=lineage,
        best_number=best_number,
        pruned_at=tuple(pruned_at),
        diagnoses=dict(diagnoses),
        range_test=find_range_test(study.user_attrs),
        epochs_spent=sum(trained_epochs(t) for t in trials if t.state in finished),
    )


def summarize_study(study: optuna.Study) -> StageSummary:
    """:func:`summarize` a stage study by the lineage it carries.

    Raises:
        ValueError: The study is not a stagetune stage (it has no lineage).
    """
    lineage = read_lineage(study)
    if lineage is None:
        raise ValueError(f"Study {study.study_name!r} has no stagetune lineage.")
    return summarize(study, lineage)


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


def find_range_test(attrs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The LR range test stored in a study's user attributes, if the stage ran one.

    Example:
        >>> find_range_test({"x": 1, "curve": {"lrs": [1e-5], "losses": [2.3]}})["lrs"]
        [1e-05]
    """
    found = attrs.get(StudyAttr.RANGE_TEST)
    if isinstance(found, Mapping):
        return found
    for value in attrs.values():
        if isinstance(value, Mapping) and "lrs" in value and "losses" in value:
            return value
    return None


def load_search(storage: BaseStorage, name: str) -> list[tuple[optuna.Study, StageLineage]]:
    """The stage studies of search ``name`` with their lineage, in plan order.

    Raises:
        SearchError: No search ``name`` in ``storage``.
    """
    import optuna

    stages = search_stages(storage, name)
    if not stages:
        raise SearchError(
            f"No search named {name!r} in this storage; `stagetune run --name {name}` starts it."
        )
    return [
        (optuna.load_study(study_name=study_name, storage=storage), lineage)
        for study_name, lineage in stages
    ]


def load_stages(storage: BaseStorage, name: str) -> list[tuple[optuna.Study, StageSummary]]:
    """The stage studies of search ``name`` with their summaries, in plan order.

    Raises:
        SearchError: No search ``name`` in ``storage``.
    """
    return [(study, summarize(study, lineage)) for study, lineage in load_search(storage, name)]


def search_status(storage: BaseStorage, name: str) -> list[StageSummary]:
    """Each stage of search ``name`` in ``storage``, in plan order."""
    summaries = []
    for study, summary in load_stages(storage, name):
        if summary.running:
            summary = replace(summary, orphaned=len(find_orphans(study)))
        summaries.append(summary)
    return summaries
