"""Trackers: ``StagedSearch(callbacks=[...])`` runs Optuna callbacks after every finished
trial, in every worker; checked with optuna-integration's MLflowCallback on a local
MLflow database (offline), not a mock."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from stagetune.search import PerProcess, SearchError, StagedSearch, run_workers
from stagetune.spaces import core_plan
from tests.search_tests.nothing_lost import studies

pytestmark = [
    # optuna-integration 5 deprecates MLflowCallback (removal planned for 6.0) but ships it.
    pytest.mark.filterwarnings("ignore:MLflowCallback has been deprecated:FutureWarning"),
    # MLflow's own SQL store, on SQLAlchemy 2.1
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

mlflow = pytest.importorskip("mlflow")
mlflow_integration = pytest.importorskip("optuna_integration.mlflow")


def _runs(tracking: str, experiment: str) -> list[dict[str, float]]:
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return [run.data.metrics for run in client.search_runs([found.experiment_id])]


@pytest.mark.parametrize("workers", [1, 2])
def test_mlflow_gets_one_run_per_finished_trial_of_every_stage(
    tmp_path: Path, workers: int
) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # MLflow creates its tables on first use; two workers doing it at once race.
    mlflow.tracking.MlflowClient(tracking_uri=tracking).search_experiments()
    make = functools.partial(
        mlflow_integration.MLflowCallback, tracking_uri=tracking, metric_name="val_accuracy"
    )
    # MLflowCallback holds a lock and cannot be pickled: each worker builds its own.
    callback = make() if workers == 1 else PerProcess(make)
    url = f"sqlite:///{tmp_path / 'search.db'}"
    search = StagedSearch(
        core_plan("mlp", n_trials=2), "digits-mlp", storage=url, name="ml", epochs=2,
        progress=None, callbacks=[callback],
    )  # fmt: skip
    if workers == 1:
        search.run()
    else:
        result, exits = run_workers(search, workers)
        assert result is not None and [e.exitcode for e in exits] == [0, 0]
    for stage, study in studies(url, "ml").items():
        finished = [t for t in study.trials if t.state.is_finished()]
        runs = _runs(tracking, f"ml/{stage}")
        assert len(runs) == len(finished) == 2, stage
        values = sorted(t.value for t in finished if t.value is not None)
        assert sorted(r["val_accuracy"] for r in runs if "val_accuracy" in r) == values


def test_an_unpicklable_callback_for_workers_says_how_to_wrap_it(tmp_path: Path) -> None:
    callback = mlflow_integration.MLflowCallback(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    search = StagedSearch(
        core_plan("mlp", n_trials=2), "digits-mlp", storage=str(tmp_path / "s.db"),
        progress=None, callbacks=[callback],
    )  # fmt: skip
    with pytest.raises(SearchError, match=r"wrap it as stagetune.search.PerProcess"):
        run_workers(search, 2)
