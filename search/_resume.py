"""Resuming a search: the same plan, or a clear message; ``--new`` to start over."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagetune.search._errors import SearchError
from stagetune.storage import find_orphans, read_settings, search_stages, study_name

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from stagetune.storage import SearchSettings


def _plan_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two ``Plan.to_dict()``s, in words."""
    changes = []
    old_stages = [s["name"] for s in old.get("stages", [])]
    new_stages = [s["name"] for s in new.get("stages", [])]
    if old_stages != new_stages:
        changes.append(f"stages {old_stages} -> {new_stages}")
    by_name = {s["name"]: s for s in old.get("stages", [])}
    for stage in new.get("stages", []):
        before = by_name.get(stage["name"])
        if before is None:
            continue
        for key in ("n_trials", "share", "params", "pruner", "sampler"):
            if before.get(key) != stage.get(key):
                label = "trials" if key == "n_trials" else key
                changes.append(
                    f"stage {stage['name']!r} {label} {before.get(key)} -> {stage.get(key)}"
                )
    if old.get("budget") != new.get("budget"):
        changes.append(f"budget {old.get('budget')} -> {new.get('budget')}")
    old_defaults, new_defaults = old.get("defaults", {}), new.get("defaults", {})
    for key in sorted(set(old_defaults) | set(new_defaults)):
        if old_defaults.get(key) != new_defaults.get(key):
            changes.append(f"default {key} {old_defaults.get(key)!r} -> {new_defaults.get(key)!r}")
    return changes


def check_resume(
    storage: BaseStorage, name: str, *, fingerprint: str, settings: SearchSettings
) -> None:
    """Raise :class:`SearchError` if search ``name`` exists with other settings.

    Args:
        storage: The search's storage.
        name: The search name.
        fingerprint: ``StagedSearch.fingerprint()`` of the search about to run.
        settings: Its task, epochs and plan (to say what differs).
    """
    stages = search_stages(storage, name)
    if all(lineage.plan == fingerprint for _, lineage in stages):
        return
    changes = []
    stored = read_settings(storage, name)
    if stored is not None:
        if stored.task != settings.task:
            changes.append(f"task {stored.task!r} -> {settings.task!r}")
        if stored.epochs != settings.epochs:
            changes.append(f"epochs {stored.epochs} -> {settings.epochs}")
        changes += _plan_differences(stored.plan, settings.plan)
    what = "; ".join(changes) if changes else "its stored plan fingerprint differs"
    raise SearchError(
        f"Search {name!r} exists in this storage with another plan ({what}). "
        f"Run it with the settings it was started with to resume it, add --new to delete "
        f"it and start over, or choose another --name."
    )


def delete_search(storage: BaseStorage, name: str) -> list[str]:
    """Delete every stage study of search ``name``; refused while it has live workers.

    Returns:
        The names of the deleted studies.
    """
    import optuna
    from optuna.trial import TrialState

    prefix = study_name(name, "")
    studies = [s.study_name for s in storage.get_all_studies() if s.study_name.startswith(prefix)]
    live = 0
    for name_of_study in studies:
        study = optuna.load_study(study_name=name_of_study, storage=storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        live += len(running) - len(find_orphans(study))
    if live:
        raise SearchError(
            f"Search {name!r} has {live} running trial(s) with live workers; stop them "
            f"before starting it anew with --new (or choose another --name)."
        )
    for name_of_study in studies:
        optuna.delete_study(study_name=name_of_study, storage=storage)
    return studies
