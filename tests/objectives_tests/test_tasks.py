from __future__ import annotations

import pytest
import torch
from torch import nn

from stagetune.objectives import Splits, Task, TaskError, load_splits


def _build(params: object) -> nn.Module:
    return nn.Linear(2, 2)


def _pair(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(rows, 2), torch.zeros(rows, dtype=torch.long)


def test_splits_take_tensor_pairs_and_datasets() -> None:
    dataset = torch.utils.data.TensorDataset(*_pair(3))
    splits = Splits(train=_pair(4), val=dataset)
    assert splits.test is None


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ((torch.zeros(4, 2), torch.zeros(3)), "train split has 4 inputs but 3 targets"),
        ([1, 2], "must be a pair of tensors .* but got list"),
        ("data", "must be a pair of tensors .* but got str"),
        (_pair(0), "The train split is empty"),
    ],
)
def test_splits_reject_what_cannot_be_trained_on(train: object, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        Splits(train=train, val=_pair(2))  # type: ignore[arg-type]


def test_task_checks_its_fields_by_name() -> None:
    with pytest.raises(TaskError, match="non-empty name"):
        Task(name=" ", load=lambda: Splits(_pair(2), _pair(2)), build_model=_build)
    with pytest.raises(TaskError, match="build_model must be callable, but got 3"):
        Task(name="t", load=lambda: Splits(_pair(2), _pair(2)), build_model=3)  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="direction must be 'maximize' or 'minimize'"):
        Task(name="t", load=lambda: Splits(_pair(2), _pair(2)), build_model=_build, direction="up")  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="num_workers must be None or an integer >= 0"):
        Task(name="t", load=lambda: Splits(_pair(2), _pair(2)), build_model=_build, num_workers=-1)


def test_load_must_return_splits_and_is_called_once() -> None:
    calls = []

    def load() -> Splits:
        calls.append(1)
        return Splits(_pair(2), _pair(2))

    task = Task(name="once", load=load, build_model=_build)
    assert load_splits(task) is load_splits(task)
    assert calls == [1]
    bad = Task(name="bad", load=lambda: (_pair(2), _pair(2)), build_model=_build)  # type: ignore[arg-type,return-value]
    with pytest.raises(TaskError, match=r"load\(\) must return stagetune.objectives.Splits"):
        load_splits(bad)


def test_better_follows_the_direction() -> None:
    up = Task(name="u", load=lambda: Splits(_pair(2), _pair(2)), build_model=_build)
    down = Task(
        name="d", load=lambda: Splits(_pair(2), _pair(2)), build_model=_build, direction="minimize"
    )
    assert up.better(0.9, 0.8) and not up.better(0.8, 0.8)
    assert down.better(0.1, 0.2) and not down.better(0.3, 0.2)
