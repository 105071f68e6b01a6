"""The examples run as the README shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagetune.objectives import get_task, load_splits
from stagetune.search import StagedSearch
from stagetune.search._cli import main
from stagetune.spaces import default_plan

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "own_model.py"


def test_own_model_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    argv = ["run", "--task", f"{EXAMPLE}:task", "--storage", url, "--trials", "2"]
    assert main([*argv, "--epochs", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "search 'diabetes-mlp' on diabetes-mlp" in out
    assert "best validation mse per stage" in out
    assert main(["status", "--storage", url, "--name", "diabetes-mlp"]) == 0
    assert capsys.readouterr().out.count("2/2 finished") == 3


def test_own_model_from_python_with_a_dataset(tmp_path: Path) -> None:
    task = get_task(f"{EXAMPLE}:dataset_task")
    search = StagedSearch(
        default_plan("mlp", n_trials=2),
        task,
        storage=f"sqlite:///{tmp_path / 'own.db'}",
        epochs=8,
        progress=None,
    )
    result = search.run()
    assert result.best_value is not None
    assert result.best_value < 1.0  # the MSE of predicting the mean is about 1


def test_the_example_learns() -> None:
    import torch

    from stagetune.objectives import TrainConfig, train

    task = get_task(f"{EXAMPLE}:task")
    result = train(
        task,
        load_splits(task),
        TrainConfig(lr=3e-3),
        epochs=20,
        device=torch.device("cpu"),
        seed=0,
    )
    assert result.final.val_metric < 0.7
