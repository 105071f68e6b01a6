"""Stage studies: their names, and what is written on them as user attributes: each
stage's lineage, and the settings the search was started with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagetune.storage._keys import StudyAttr

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

#: The user attributes a stage study carries; the key names are public (dashboards
#: and notebooks read them).
LINEAGE_KEYS: tuple[str, ...] = (
    StudyAttr.SEARCH,
    StudyAttr.STAGE,
    StudyAttr.STAGE_INDEX,
    StudyAttr.N_STAGES,
    StudyAttr.SEARCHES,
    StudyAttr.CARRIED,
    StudyAttr.BUDGET,
    StudyAttr.BUDGET_UNIT,
    StudyAttr.PLAN,
    StudyAttr.DONE,
    StudyAttr.BEST_PARAMS,
    StudyAttr.BEST_VALUE,
)


class SearchNameError(ValueError):
    """A search name that cannot name studies (empty, or holding ``/``): a user error."""


def study_name(search: str, stage: str) -> str:
    """The study name of one stage of a search: ``"<search>/<stage>"``.

    Example:
        >>> study_name("demo", "lr")
        'demo/lr'
    """
    if not isinstance(search, str) or not search.strip() or "/" in search:
        example = search.replace("/", "-").strip() if isinstance(search, str) else ""
        raise SearchNameError(
            f"Invalid search name {search!r}: a search name must be a non-empty string "
            f"without '/' (its stages are the studies '<search>/<stage>'); choose another "
            f"--name, e.g. {example or 'demo'!r}."
        )
    return f"{search}/{stage}"


@dataclass(frozen=True)
class StageLineage:
    """What a stage study records about its place in the search.

    Args:
        search: Search name.
        stage: Stage name.
        index: Position of the stage in the plan (0-based).
        n_stages: Number of stages in the plan.
        searches: The parameters the stage searches, with their ranges.
        carried: Values fixed by earlier stages (name -> value).
        budget: What the stage may spend, in ``budget_unit``.
        plan: Fingerprint of the plan the search was started with.
        done: Whether the stage has its budget and its best is recorded.
        best_params: The stage's best values of ``searches`` (once done).
        best_value: The stage's best metric (once done).
        budget_unit: ``"trials"`` (finished trials) or ``"epochs"`` (trained epochs,
            pruned trials' partial epochs included).
    """

    search: str
    stage: str
    index: int
    n_stages: int
    searches: dict[str, Any]
    carried: dict[str, Any]
    budget: int
    plan: str
    done: bool = False
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    budget_unit: str = "trials"

    def to_attrs(self) -> dict[str, Any]:
        return {
            StudyAttr.SEARCH: self.search,
            StudyAttr.STAGE: self.stage,
            StudyAttr.STAGE_INDEX: self.index,
            StudyAttr.N_STAGES: self.n_stages,
            StudyAttr.SEARCHES: self.searches,
            StudyAttr.CARRIED: self.carried,
            StudyAttr.BUDGET: self.budget,
            StudyAttr.BUDGET_UNIT: self.budget_unit,
            StudyAttr.PLAN: self.plan,
            StudyAttr.DONE: self.done,
            StudyAttr.BEST_PARAMS: self.best_params,
            StudyAttr.BEST_VALUE: self.best_value,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StageLineage | None:
        """The lineage in a study's user attributes, or ``None`` if it has none yet
        (:func:`write_lineage` writes the stage name last, so a study that has it has
        every other lineage attribute too)."""
        if StudyAttr.STAGE not in attrs:
            return None
        return cls(
            search=attrs[StudyAttr.SEARCH],
            stage=attrs[StudyAttr.STAGE],
            index=int(attrs[StudyAttr.STAGE_INDEX]),
            n_stages=int(attrs[StudyAttr.N_STAGES]),
            searches=dict(attrs.get(StudyAttr.SEARCHES, {})),
            carried=dict(attrs.get(StudyAttr.CARRIED, {})),
            budget=int(attrs[StudyAttr.BUDGET]),
            plan=str(attrs.get(StudyAttr.PLAN, "")),
            done=bool(attrs.get(StudyAttr.DONE, False)),
            best_params=dict(attrs.get(StudyAttr.BEST_PARAMS) or {}),
            best_value=attrs.get(StudyAttr.BEST_VALUE),
            budget_unit=str(attrs.get(StudyAttr.BUDGET_UNIT, "trials")),
        )


@dataclass(frozen=True)
class SearchSettings:
    """What a search was started with, written on its first stage's study: what
    ``--new`` and a resume with other settings compare against, and what the notes and
    the report show.

    Args:
        task: The task's name.
        epochs: Epochs per trial.
        plan: The plan, as ``Plan.to_dict()``.
    """

    task: str
    epochs: int
    plan: dict[str, Any]

    @property
    def defaults(self) -> dict[str, Any]:
        """The plan's defaults (the guide's step-1 values)."""
        return dict(self.plan.get("defaults", {}))

    def to_attrs(self) -> dict[str, Any]:
        return {
            StudyAttr.TASK: self.task,
            StudyAttr.EPOCHS: self.epochs,
            StudyAttr.PLAN_SPEC: self.plan,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> SearchSettings | None:
        """The settings in a study's user attributes, or ``None`` if it has none."""
        keys = (StudyAttr.TASK, StudyAttr.EPOCHS, StudyAttr.PLAN_SPEC)
        if any(key not in attrs for key in keys):
            return None
        return cls(
            task=str(attrs[StudyAttr.TASK]),
            epochs=int(attrs[StudyAttr.EPOCHS]),
            plan=dict(attrs[StudyAttr.PLAN_SPEC]),
        )


def write_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """Write user attributes on a study, skipping those that already hold the value (so
    that every worker can write them, and a resumed search writes nothing)."""
    current = study.user_attrs
    for key, value in attrs.items():
        if current.get(key) != value:
            study.set_user_attr(key, value)


def write_lineage(study: optuna.Study, lineage: StageLineage) -> None:
    """Write (or update) the lineage attributes on a stage study.

    Each attribute is its own commit, and other workers read the study without the
    search lock (a resume check): the stage name goes last, so that a reader sees a
    study either without lineage or with all of it.
    """
    attrs = lineage.to_attrs()
    stage = attrs.pop(StudyAttr.STAGE)
    write_attrs(study, {**attrs, StudyAttr.STAGE: stage})


def write_settings(study: optuna.Study, settings: SearchSettings) -> None:
    """Write the search's settings on (its first stage's) study."""
    write_attrs(study, settings.to_attrs())


def read_settings(storage: BaseStorage, search: str) -> SearchSettings | None:
    """The settings search ``search`` was started with, ``None`` if none is stored."""
    for frozen in storage.get_all_studies():
        if frozen.study_name.startswith(study_name(search, "")):
            lineage = StageLineage.from_attrs(frozen.user_attrs)
            if lineage is not None and lineage.search == search and lineage.index == 0:
                return SearchSettings.from_attrs(frozen.user_attrs)
    return None


def read_lineage(study: optuna.Study) -> StageLineage | None:
    return StageLineage.from_attrs(study.user_attrs)


def search_stages(storage: BaseStorage, search: str) -> list[tuple[str, StageLineage]]:
    """The stage studies of a search, in plan order, as ``(study name, lineage)``."""
    prefix = study_name(search, "")
    found = []
    for frozen in storage.get_all_studies():
        if not frozen.study_name.startswith(prefix):
            continue
        lineage = StageLineage.from_attrs(frozen.user_attrs)
        if lineage is not None and lineage.search == search:
            found.append((frozen.study_name, lineage))
    return sorted(found, key=lambda item: item[1].index)
