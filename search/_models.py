"""Getting the final run's trained model back: as a file, or as a model with its weights.

The final run uploads its best epoch's weights, with the config that built the
model and the task's name, to the search's artifact store
(``stagetune.objectives.ModelFile``, ``model.pt``); this module finds that
artifact in storage and reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagetune.objectives import MODEL_ATTR, ModelFile, get_task
from stagetune.search._errors import SearchError
from stagetune.search._read import load_search

if TYPE_CHECKING:
    import torch
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.storages import BaseStorage

    from stagetune.objectives import Task


def final_model(storage: BaseStorage, name: str, *, artifacts: ArtifactStore | None) -> ModelFile:
    """The final run's model of search ``name``.

    Raises:
        SearchError: No such search, no final run with a stored model yet, no artifact
            store, or the artifact is missing from it.
    """
    from optuna.artifacts.exceptions import ArtifactNotFound
    from optuna.trial import TrialState

    artifact_id = None
    for study, _ in reversed(load_search(storage, name)):
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if any(MODEL_ATTR in t.user_attrs for t in complete):
            artifact_id = study.best_trial.user_attrs.get(MODEL_ATTR)
            break
    if artifact_id is None:
        raise SearchError(
            f"Search {name!r} has no trained model yet: its final run has not finished "
            f"(or ran without an artifact store); `stagetune status --name {name}` shows it."
        )
    if artifacts is None:
        raise SearchError(
            f"Search {name!r} stored its model in an artifact store: pass --artifacts "
            f"(artifacts= in Python) with the one the search used."
        )
    try:
        with artifacts.open_reader(artifact_id) as reader:
            return ModelFile.load(reader)
    except ArtifactNotFound:
        raise SearchError(
            f"The model of search {name!r} (artifact {artifact_id}) is not in this artifact "
            f"store: pass --artifacts with the one the search used."
        ) from None


def export_model(
    storage: BaseStorage,
    name: str,
    path: str | os.PathLike[str],
    *,
    artifacts: ArtifactStore | None,
) -> ModelFile:
    """Write the final run's model of search ``name`` to ``path``; returns it."""
    model = final_model(storage, name, artifacts=artifacts)
    target = Path(path)
    if target.parent and not target.parent.is_dir():
        raise SearchError(f"Cannot write {str(target)!r}: its directory does not exist.")
    model.save(target)
    return model


def load_model(
    name: str = "digits-mlp",
    *,
    storage: str | BaseStorage | None = None,
    artifacts: str | ArtifactStore | None = None,
    task: Task | None = None,
) -> torch.nn.Module:
    """The trained model of search ``name``, built from its config, with the weights of
    the final run's best epoch loaded (on the CPU, in eval mode).

    Args:
        name: The search's name.
        storage: Its storage (default: ``sqlite:///stagetune.db``).
        artifacts: Its artifact store (default: the one beside a SQLite database).
        task: The task to build the model with (default: the one the search named;
            pass your own ``Task`` when the name is not importable here).

    Example:
        >>> import stagetune
        >>> model = stagetune.load_model("digits-mlp")  # doctest: +SKIP
    """
    from stagetune.storage import open_artifacts, open_storage

    opened: Any = (
        open_storage(storage, read_only=True)
        if storage is None or isinstance(storage, str)
        else storage
    )
    store = open_artifacts(artifacts, storage, create=False)
    found = final_model(opened, name, artifacts=store)
    return found.build(task if task is not None else get_task(found.task))
