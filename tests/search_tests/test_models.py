"""The trained model a search leaves: stored as an artifact, exported, loaded, browsed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
import torch
from optuna.artifacts import get_all_artifact_meta

import stagetune
from stagetune.objectives import MODEL_ATTR, ModelFile, get_task
from stagetune.objectives._tasks import load_splits
from stagetune.objectives._train import evaluate
from stagetune.search import SearchError, StagedSearch
from stagetune.search._cli import main
from stagetune.spaces import default_plan
from stagetune.storage import open_artifacts, open_storage


def _plan() -> stagetune.Plan:
    plan = default_plan("mlp", n_trials=2)
    return replace(plan, stages=tuple(s for s in plan.stages if s.name in ("lr", "final")))


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-stage search (lr, final) in ``<dir>/runs.db``, artifacts by default."""
    directory = tmp_path_factory.mktemp("models")
    StagedSearch(
        _plan(), "digits-mlp", storage=str(directory / "runs.db"), name="m", epochs=3,
        progress=None,
    ).run()  # fmt: skip
    return directory


def _final_trial(directory: Path) -> optuna.trial.FrozenTrial:
    storage = open_storage(str(directory / "runs.db"), read_only=True)
    return optuna.load_study(study_name="m/final", storage=storage).best_trial


def test_the_model_is_stored_beside_the_sqlite_database(searched: Path) -> None:
    trial = _final_trial(searched)
    artifact_id = trial.user_attrs[MODEL_ATTR]
    assert (searched / "runs-artifacts" / artifact_id).is_file()
    # only the model is left: the trials' checkpoints were removed when they finished
    assert [p.name for p in (searched / "runs-artifacts").iterdir()] == [artifact_id]


def test_load_model_returns_the_task_model_with_the_best_weights(searched: Path) -> None:
    model = stagetune.load_model("m", storage=str(searched / "runs.db"))
    task = get_task("digits-mlp")
    _, test_metric = evaluate(model, task, load_splits(task).test)
    assert test_metric == _final_trial(searched).user_attrs["test_metric"]


def test_export_model_writes_the_file(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.pt"
    code = main(
        ["export", "--storage", str(searched / "runs.db"), "--name", "m", "--model", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert "written to" in capsys.readouterr().out
    exported = ModelFile.load(out)
    trial = _final_trial(searched)
    assert exported.config == trial.user_attrs["config"]
    assert exported.best_epoch == trial.user_attrs["best_epoch"]
    assert exported.task == "digits-mlp"
    # the same weights as load_model's
    model = stagetune.load_model("m", storage=str(searched / "runs.db"))
    for key, value in model.state_dict().items():
        assert torch.equal(exported.state_dict[key], value)


def test_export_model_without_the_artifact_store_says_what_to_pass(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    argv = ["export", "--storage", str(searched / "runs.db"), "--name", "m"]
    assert main([*argv, "--model", str(tmp_path / "x.pt"), "--artifacts", str(empty)]) == 2
    assert "pass --artifacts with the one the search used" in capsys.readouterr().err


def test_a_search_without_a_final_run_has_no_model(tmp_path: Path) -> None:
    plan = default_plan("mlp", n_trials=1)
    plan = replace(plan, stages=tuple(s for s in plan.stages if s.name == "lr"))
    url = str(tmp_path / "s.db")
    StagedSearch(plan, "digits-mlp", storage=url, name="s", epochs=1, progress=None).run()
    with pytest.raises(SearchError, match="has no trained model yet"):
        stagetune.load_model("s", storage=url)


def test_the_dashboard_serves_the_model_artifact(searched: Path) -> None:
    import optuna_dashboard

    storage = open_storage(str(searched / "runs.db"), read_only=True)
    store = open_artifacts(None, str(searched / "runs.db"), create=False)
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    study = optuna.load_study(study_name="m/final", storage=storage)
    trial = study.best_trial
    (meta,) = get_all_artifact_meta(trial, storage=storage)

    def get(path: str) -> tuple[str, bytes]:
        environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))  # type: ignore[arg-type]
        return status[0], body

    status, body = get(f"/api/studies/{study._study_id}")
    assert status.startswith("200")
    trials = json.loads(body)["trials"]
    listed = [a["filename"] for t in trials for a in t.get("artifacts", [])]
    assert listed == ["model.pt"]
    status, body = get(f"/artifacts/{study._study_id}/{trial._trial_id}/{meta.artifact_id}")
    assert status.startswith("200")
    assert body == (searched / "runs-artifacts" / meta.artifact_id).read_bytes()
