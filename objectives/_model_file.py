"""The final run's trained model as a file: weights, the config that built them, the task.

The file is what ``torch.save`` writes for a plain dict of tensors, strings and
numbers, so ``torch.load(path, weights_only=True)`` reads it without running
any pickled code::

    {"format": 1, "task": "digits-mlp", "config": {...}, "state_dict": {...},
     "best_epoch": 12, "val_metric": 0.97, "test_metric": 0.96}

:meth:`ModelFile.build` rebuilds the task's model from ``config`` and loads the weights
(``stagetune.load_model`` does it for a search's final run in one call).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagetune.storage import TrialAttr

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore

    from stagetune.objectives._tasks import Task

#: Trial user attribute holding the artifact id of the final run's model.
MODEL_ATTR = TrialAttr.MODEL_ARTIFACT
#: The artifact's file name (optuna-dashboard shows it; ``stagetune export`` suggests it).
MODEL_FILENAME = "model.pt"
FORMAT = 1


class ModelFileError(ValueError):
    """A file that is not a stagetune model file (or of another format version)."""


@dataclass(frozen=True)
class ModelFile:
    """A trained model: its task, the config that built it, and its weights.

    Attributes:
        task: The task's name (a built-in name, or ``"module:attribute"``).
        config: Every hyperparameter of the run (``TrainConfig.from_params`` reads it).
        state_dict: The weights (on the CPU).
        best_epoch: The epoch these weights are from.
        val_metric: Their validation metric.
        test_metric: Their test metric, when the task has a test split.
    """

    task: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    best_epoch: int = 0
    val_metric: float | None = None
    test_metric: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "config": dict(self.config),
            "state_dict": {k: v.detach().to("cpu") for k, v in self.state_dict.items()},
            "best_epoch": self.best_epoch,
            "val_metric": self.val_metric,
            "test_metric": self.test_metric,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file (to a temporary name first, so that ``path`` is never half-written)."""
        import torch

        directory = os.path.dirname(os.fspath(path)) or "."
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=".stagetune-model-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                torch.save(self.to_dict(), out)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path_or_file: Any) -> ModelFile:
        """Read a model file (a path or a binary file object), loading no pickled code.

        Raises:
            ModelFileError: It is not a stagetune model file.
        """
        import pickle

        import torch

        try:
            data = torch.load(path_or_file, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
            raise ModelFileError(f"not a stagetune model file: {error}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ModelFileError(
                f"not a stagetune model file of format {FORMAT} (found {found!r})"
            )
        return cls(
            task=data["task"],
            config=dict(data["config"]),
            state_dict=dict(data["state_dict"]),
            best_epoch=int(data["best_epoch"]),
            val_metric=data["val_metric"],
            test_metric=data["test_metric"],
        )

    def build(self, task: Task) -> torch.nn.Module:
        """The task's model, built from ``config``, with the weights loaded, in eval mode.

        Args:
            task: The task to build with (``get_task(model_file.task)`` for a built-in
                one or a ``module:attribute`` reference).
        """
        import torch

        from stagetune.objectives._config import TrainConfig

        model = task.build_model(TrainConfig.from_params(self.config).model_params)
        with torch.no_grad():
            model.load_state_dict(self.state_dict)
        return model.eval()


def upload_model(store: ArtifactStore, trial: optuna.Trial, model: ModelFile) -> str:
    """Upload ``model`` as ``model.pt`` to ``store``, linked to ``trial``; returns its id."""
    from optuna.artifacts import upload_artifact

    with tempfile.TemporaryDirectory(prefix="stagetune-model-") as directory:
        path = os.path.join(directory, MODEL_FILENAME)
        model.save(path)
        return upload_artifact(
            artifact_store=store,
            file_path=path,
            study_or_trial=trial,
            mimetype="application/octet-stream",
        )
