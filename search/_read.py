"""The read side of a search: its stage studies and where each stage stands.

Everything here reads storage only, so ``status``, ``report``, ``export`` and the
dashboard work on a search that another process runs (or that no longer runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from stagetune.search._budget import trained_epochs
from stagetune.search._errors import SearchError
from stagetune.storage import StageLineage, find_orphans, search_stages

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage


@dataclass(frozen=True)
class StageSummary:
    """Where one stage stands.

    Attributes:
        name: Stage name.
        study_name: Its Optuna study, ``"<search>/<stage>"``.
        budget: What it may spend, in ``budget_unit``: finished trials, or trained
            epochs (its allowance of the search's epoch budget).
        complete, pruned, failed, running, waiting: Trials by state.
        retried: Trials that re-run a trial whose worker died.
        orphaned: RUNNING trials whose worker is gone (the next worker fails
            and re-runs them); filled in by :func:`search_status`.
        best_value: Best metric so far (``None`` before any complete trial).
        best_params: The stage's own parameters of its best trial.
        done: The stage has its budget and its best is recorded.
        budget_unit: ``"trials"`` or ``"epochs"``.
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
    budget_unit: str = "trials"
    epochs_spent: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

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
    """Count a stage study's trials by state and read its best."""
    trials = study.get_trials(deepcopy=False)
    count = {state: 0 for state in TrialState}
    for trial in trials:
        count[trial.state] += 1
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    best_value = None
    best_params: dict[str, Any] = {}
    if lineage.done and lineage.best_value is not None:
        # A closed stage: what was recorded (and carried forward), not a recount.
        best_value = lineage.best_value
        best_params = dict(lineage.best_params)
    elif count[TrialState.COMPLETE]:
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
        budget_unit=lineage.budget_unit,
        epochs_spent=sum(trained_epochs(t) for t in trials if t.state in finished),
    )


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


def search_status(storage: BaseStorage, name: str) -> list[StageSummary]:
    """Each stage of search ``name`` in ``storage``, in plan order."""
    summaries = []
    for study, lineage in load_search(storage, name):
        summary = summarize(study, lineage)
        if summary.running:
            summary = replace(summary, orphaned=len(find_orphans(study)))
        summaries.append(summary)
    return summaries
