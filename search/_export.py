"""``stagetune export``: every stage's trials in one table (CSV or Parquet) for notebooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagetune.search._errors import SearchError
from stagetune.search._read import load_stages

if TYPE_CHECKING:
    import pandas
    from optuna.storages import BaseStorage

#: File types :func:`export_trials` writes, by suffix.
EXPORT_FORMATS: tuple[str, ...] = (".csv", ".parquet")


def trials_frame(storage: BaseStorage, name: str) -> pandas.DataFrame:
    """All trials of search ``name``, one row each, stage by stage.

    The columns are Optuna's ``Study.trials_dataframe()`` (``number``, the value,
    ``params_*``, ``user_attrs_*``, ``system_attrs_*``, ``state``, times) preceded by
    ``stage``, ``stage_index`` and ``study``. A parameter a stage neither searched nor
    carried is empty in that stage's rows. Dict and list cells (the trial's
    ``config``, ...) are JSON text, so that CSV and Parquet hold the same thing.

    Args:
        storage: The search's storage.
        name: The search name.

    Returns:
        A ``pandas.DataFrame``.

    Raises:
        SearchError: No search ``name`` in ``storage``.
    """
    import pandas

    frames = []
    for study, summary in load_stages(storage, name):
        frame = study.trials_dataframe()
        frame.insert(0, "study", summary.study_name)
        frame.insert(0, "stage_index", summary.index)
        frame.insert(0, "stage", summary.name)
        frames.append(frame)
    table = pandas.concat(frames, ignore_index=True, sort=False)
    table = table[sorted(table.columns, key=_column_group)]  # stable: params stay together
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(_jsonable_cell)
    return table


def export_trials(storage: BaseStorage, name: str, path: str | Path) -> Path:
    """Write :func:`trials_frame` to ``path``: CSV or Parquet, chosen by its suffix.

    Args:
        storage: The search's storage.
        name: The search name.
        path: A ``.csv`` or ``.parquet`` file; its directory must exist.

    Returns:
        The path written.

    Raises:
        SearchError: Unknown suffix, missing directory, a file that cannot be written,
            or no search ``name``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise SearchError(
            f"Cannot export to {str(target)!r}: the file must end in one of {EXPORT_FORMATS}."
        )
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SearchError(
            f"Cannot export to {str(target)!r}: the directory {str(directory)!r} does not exist."
        )
    if target.is_dir():
        raise SearchError(f"Cannot export to {str(target)!r}: it is a directory; choose a file.")
    table = trials_frame(storage, name)
    try:
        if suffix == ".csv":
            table.to_csv(target, index=False)
        else:
            table.to_parquet(target, index=False)
    except OSError as error:
        raise SearchError(
            f"Cannot export to {str(target)!r}: {error.strerror or error}; choose another --out."
        ) from None
    return target


def _column_group(column: str) -> int:
    for group, prefix in enumerate(("params_", "user_attrs_", "system_attrs_", "state"), 1):
        if column.startswith(prefix):
            return group
    return 0


def _jsonable_cell(value: Any) -> Any:
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return value
