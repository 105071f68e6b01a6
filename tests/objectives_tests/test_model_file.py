"""The final run's model as an artifact: weights, config and task, rebuilt in one call."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

from stagetune.objectives import MODEL_ATTR, FinalObjective, ModelFile, ModelFileError, get_task
from stagetune.objectives._tasks import load_splits
from stagetune.objectives._train import evaluate


def test_the_final_run_uploads_its_best_weights_with_config_and_task(tmp_path: Path) -> None:
    store = FileSystemArtifactStore(tmp_path)
    study = optuna.create_study(direction="maximize")
    task = get_task("digits-mlp")
    objective = FinalObjective(
        task=task,
        searched=(),
        defaults={"lr": 3e-2, "scheduler": "constant"},
        epochs=5,
        device=torch.device("cpu"),
        early_stopping_patience=2,
        artifacts=store,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    (meta,) = get_all_artifact_meta(trial, storage=study._storage)
    assert meta.filename == "model.pt" and meta.artifact_id == trial.user_attrs[MODEL_ATTR]

    path = tmp_path / "downloaded.pt"
    download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(path))
    model_file = ModelFile.load(path)
    assert model_file.task == "digits-mlp"
    assert model_file.config == trial.user_attrs["config"]
    assert model_file.best_epoch == trial.user_attrs["best_epoch"]
    model = model_file.build(get_task(model_file.task))
    assert not model.training
    # The weights are the best epoch's: they score the test split as the run did.
    _, test_metric = evaluate(model, task, load_splits(task).test)
    assert test_metric == trial.user_attrs["test_metric"] == model_file.test_metric


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(ModelFileError, match="not a stagetune model file"):
        ModelFile.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="not a stagetune model file"):
        ModelFile.load(path)
