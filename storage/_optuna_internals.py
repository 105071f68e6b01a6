"""The private Optuna names that stagetune's storage relies on, in one place.

Optuna's public storage API has no way to hold a running trial's reports in
memory, nor to ask "has a trial finished since?", nor to list the trials whose
heartbeat stopped without failing them. So:

- ``BufferedStorage`` (``_buffered.py``) subclasses ``optuna.storages._CachedStorage``,
  reads its cache (``_studies``: ``trials``, ``unfinished_trial_ids``,
  ``last_finished_trial_id``) and writes reports and user attributes to Optuna's
  tables through ``optuna.storages._rdb.models``;
- ``find_orphans`` (``_recovery.py``) calls ``RDBStorage._get_stale_trial_ids``
  (the query ``optuna.storages.fail_stale_trials`` uses) and reads the heartbeat
  table through ``RDBStorage.scoped_session``;
- ``RetryingRDBStorage`` (``_rdb.py``) retries ``RDBStorage._get_trials``, which
  ``_CachedStorage`` calls directly for its reads.

``pyproject.toml`` allows only the Optuna versions in :data:`TESTED_OPTUNA`.
:func:`missing` names each of these that an Optuna version no longer has;
``tests/storage_tests/test_optuna_internals.py`` fails with that list, so widening
the pin starts there (then run ``tests/storage_tests/test_contract.py``, which
checks the behaviour).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

#: Optuna releases (major.minor) that the storage was tested with; pyproject.toml pins these.
TESTED_OPTUNA = ("5.0",)

#: Columns of Optuna's tables that stagetune reads or writes, by model name.
COLUMNS = {
    "TrialModel": ("trial_id", "study_id", "state"),
    "TrialIntermediateValueModel": (
        "trial_id",
        "step",
        "intermediate_value",
        "intermediate_value_type",
    ),
    "TrialUserAttributeModel": ("trial_id", "key", "value_json"),
    "TrialHeartbeatModel": ("trial_id",),
}

#: ``_CachedStorage`` methods that ``BufferedStorage`` overrides or calls, with the
#: parameters it passes.
CACHED_STORAGE_METHODS = {
    "__init__": ("backend",),
    "__getstate__": (),
    "__setstate__": ("state",),
    "create_new_trial": ("study_id", "template_trial"),
    "set_trial_state_values": ("trial_id", "state", "values"),
    "set_trial_intermediate_value": ("trial_id", "step", "intermediate_value"),
    "set_trial_user_attr": ("trial_id", "key", "value"),
    "get_trial": ("trial_id",),
    "get_all_trials": ("study_id", "deepcopy", "states"),
}

#: Attributes of a ``_CachedStorage`` and of its per-study cache (``_StudyInfo``).
CACHED_STORAGE_ATTRS = ("_backend", "_studies", "_lock")
STUDY_CACHE_ATTRS = ("trials", "unfinished_trial_ids", "last_finished_trial_id")


def missing(rdb: RDBStorage | None = None) -> list[str]:
    """What the installed Optuna lacks of the private names listed above (empty: all there).

    Args:
        rdb: An RDB storage whose instance attributes to check too (``scoped_session``).

    Example:
        >>> missing()
        []
    """
    problems: list[str] = []
    problems += _check_cached_storage()
    problems += _check_models()
    problems += _check_rdb_storage(rdb)
    return problems


def _attribute(path: str) -> Any:
    """``optuna.storages._CachedStorage`` etc. by dotted path, or ``None`` if it is gone."""
    import importlib

    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return None


def _parameters_missing(
    where: str, function: Callable[..., Any], names: tuple[str, ...]
) -> list[str]:
    parameters = inspect.signature(function).parameters
    return [f"{where}: no parameter {name!r}" for name in names if name not in parameters]


def _check_cached_storage() -> list[str]:
    cached: Any = _attribute("optuna.storages._CachedStorage")
    if not isinstance(cached, type):
        return ["optuna.storages._CachedStorage is gone"]
    problems = []
    for method, parameters in CACHED_STORAGE_METHODS.items():
        function = getattr(cached, method, None)
        where = f"optuna.storages._CachedStorage.{method}"
        if function is None:
            problems.append(f"{where} is gone")
        else:
            problems += _parameters_missing(where, function, parameters)
    try:
        instance = cached(None)  # it only keeps the backend; no database is touched
    except Exception as error:  # anything but storing the backend: changed
        return [*problems, f"optuna.storages._CachedStorage(backend) fails: {error!r}"]
    problems += [
        f"optuna.storages._CachedStorage has no attribute {name!r}"
        for name in CACHED_STORAGE_ATTRS
        if not hasattr(instance, name)
    ]
    study_info = _attribute("optuna.storages._cached_storage._StudyInfo")
    if not isinstance(study_info, type):
        return [*problems, "optuna.storages._cached_storage._StudyInfo is gone"]
    study = study_info()
    problems += [
        f"optuna.storages._cached_storage._StudyInfo has no attribute {name!r}"
        for name in STUDY_CACHE_ATTRS
        if not hasattr(study, name)
    ]
    return problems


def _check_models() -> list[str]:
    problems = []
    for model_name, columns in COLUMNS.items():
        model = _attribute(f"optuna.storages._rdb.models.{model_name}")
        where = f"optuna.storages._rdb.models.{model_name}"
        if model is None:
            problems.append(f"{where} is gone")
            continue
        problems += [
            f"{where} has no column {column!r}"
            for column in columns
            if column not in model.__table__.c
        ]
    values = _attribute("optuna.storages._rdb.models.TrialIntermediateValueModel")
    if values is not None and not hasattr(values, "intermediate_value_to_stored_repr"):
        problems.append(
            "optuna.storages._rdb.models.TrialIntermediateValueModel"
            ".intermediate_value_to_stored_repr is gone"
        )
    return problems


def _check_rdb_storage(instance: RDBStorage | None) -> list[str]:
    import optuna

    problems = []
    private = {
        "_get_stale_trial_ids": ("study_id",),
        "_get_trials": ("study_id", "states", "included_trial_ids", "trial_id_greater_than"),
    }
    for name, parameters in private.items():
        method = getattr(optuna.storages.RDBStorage, name, None)
        if method is None or getattr(method, "__isabstractmethod__", False):
            problems.append(f"optuna.storages.RDBStorage.{name} is gone")
        else:
            problems += _parameters_missing(
                f"optuna.storages.RDBStorage.{name}", method, parameters
            )
    if instance is not None and not callable(getattr(instance, "scoped_session", None)):
        problems.append("optuna.storages.RDBStorage has no attribute 'scoped_session'")
    return problems
