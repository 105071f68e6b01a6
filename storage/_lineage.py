"""Stage studies: their names and the lineage written on them as user attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

#: The user attributes a stage study carries; the key names are public (dashboards
#: and notebooks read them).
LINEAGE_KEYS: tuple[str, ...] = (
    "stagetune_search",
    "stagetune_stage",
    "stagetune_stage_index",
    "stagetune_n_stages",
    "stagetune_searches",
    "stagetune_carried",
    "stagetune_budget",
    "stagetune_budget_unit",
    "stagetune_plan",
    "stagetune_done",
    "stagetune_best_params",
    "stagetune_best_value",
)


def study_name(search: str, stage: str) -> str:
    """The study name of one stage of a search: ``"<search>/<stage>"``.

    Example:
        >>> study_name("demo", "lr")
        'demo/lr'
    """
    if not isinstance(search, str) or not search or "/" in search:
        raise ValueError(
            f"A search name must be a non-empty string without '/', but got {search!r}."
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
            "stagetune_search": self.search,
            "stagetune_stage": self.stage,
            "stagetune_stage_index": self.index,
            "stagetune_n_stages": self.n_stages,
            "stagetune_searches": self.searches,
            "stagetune_carried": self.carried,
            "stagetune_budget": self.budget,
            "stagetune_budget_unit": self.budget_unit,
            "stagetune_plan": self.plan,
            "stagetune_done": self.done,
            "stagetune_best_params": self.best_params,
            "stagetune_best_value": self.best_value,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StageLineage | None:
        """The lineage in a study's user attributes, or ``None`` if it has none."""
        if "stagetune_stage" not in attrs:
            return None
        return cls(
            search=attrs["stagetune_search"],
            stage=attrs["stagetune_stage"],
            index=int(attrs["stagetune_stage_index"]),
            n_stages=int(attrs["stagetune_n_stages"]),
            searches=dict(attrs.get("stagetune_searches", {})),
            carried=dict(attrs.get("stagetune_carried", {})),
            budget=int(attrs["stagetune_budget"]),
            plan=str(attrs.get("stagetune_plan", "")),
            done=bool(attrs.get("stagetune_done", False)),
            best_params=dict(attrs.get("stagetune_best_params") or {}),
            best_value=attrs.get("stagetune_best_value"),
            budget_unit=str(attrs.get("stagetune_budget_unit", "trials")),
        )


def write_lineage(study: optuna.Study, lineage: StageLineage) -> None:
    """Write (or update) the lineage attributes on a stage study."""
    current = study.user_attrs
    for key, value in lineage.to_attrs().items():
        if current.get(key) != value:
            study.set_user_attr(key, value)


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
