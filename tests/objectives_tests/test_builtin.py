from __future__ import annotations

import pytest
import torch

from stagetune.objectives import TASKS, TaskError, TrainConfig, get_task, load_splits, train

CPU = torch.device("cpu")


def test_builtin_tasks_and_their_profiles() -> None:
    assert {name: task.profile for name, task in TASKS.items()} == {
        "digits-mlp": "mlp",
        "mnist1d-cnn": "cnn-scratch",
        "mnist1d-transformer": "transformer-scratch",
        "mnist1d-mlp": "mlp",
    }
    assert all(task.description for task in TASKS.values())


def test_digits_split_is_fixed_seeded_and_disjoint() -> None:
    splits = load_splits(get_task("digits-mlp"))
    sizes = [len(part[0]) for part in (splits.train, splits.val, splits.test)]  # type: ignore[index]
    assert sizes == [1078, 359, 360]
    again = get_task("digits-mlp").load()
    assert torch.equal(again.val[0], splits.val[0])  # type: ignore[index]
    train_rows = {tuple(row.tolist()) for row in splits.train[0]}  # type: ignore[index]
    assert not any(tuple(row.tolist()) in train_rows for row in splits.test[0][:50])  # type: ignore[index]


def test_digits_mlp_learns() -> None:
    task = get_task("digits-mlp")
    result = train(task, load_splits(task), TrainConfig(lr=3e-3), epochs=5, device=CPU, seed=0)
    losses = [h.train_loss for h in result.history]
    assert losses[-1] < losses[0] / 2
    assert result.final.val_metric > 0.85  # chance is 0.1


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(TaskError, match=r"Unknown task 'nope'; available: \['digits-mlp'"):
        get_task("nope")
