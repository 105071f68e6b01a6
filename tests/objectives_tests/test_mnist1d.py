from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from stagetune.objectives import TrainConfig, get_task, load_splits, train
from stagetune.objectives._mnist1d import load_mnist1d, mnist1d_arrays

CPU = torch.device("cpu")


def test_generation_is_seeded_and_leaves_the_global_generators_alone() -> None:
    first = mnist1d_arrays()
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    mnist1d_arrays.cache_clear()
    again = mnist1d_arrays()
    assert (np.random.random(), random.random()) == expected
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["x"].shape == (4000, 40)
    assert first["x_test"].shape == (1000, 40)


def test_splits_are_fixed_disjoint_and_balanced() -> None:
    splits = load_mnist1d()
    sizes = [len(part[0]) for part in (splits.train, splits.val, splits.test)]  # type: ignore[index]
    assert sizes == [3200, 800, 1000]
    assert splits.train[0].dtype == torch.float32  # type: ignore[index]
    assert splits.train[1].dtype == torch.int64  # type: ignore[index]
    train_rows = {tuple(row.tolist()) for row in splits.train[0]}  # type: ignore[index]
    assert not any(tuple(row.tolist()) in train_rows for row in splits.val[0])  # type: ignore[index]
    counts = torch.bincount(splits.val[1], minlength=10)  # type: ignore[index]
    assert counts.min() > 50  # every class is in the validation split
    assert torch.equal(load_mnist1d().val[0], splits.val[0])  # type: ignore[index]


def test_small_split_keeps_1000_training_rows_and_the_same_validation() -> None:
    small = load_splits(get_task("mnist1d-mlp"))
    full = load_splits(get_task("mnist1d-cnn"))
    assert len(small.train[0]) == 1000  # type: ignore[index]
    assert torch.equal(small.train[0], full.train[0][:1000])  # type: ignore[index]
    assert torch.equal(small.val[0], full.val[0])  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "params", "epochs", "floor"),
    [
        # chance is 0.1 on every task; each run takes a few seconds on one thread
        ("mnist1d-cnn", {"lr": 3e-3}, 3, 0.6),
        (
            "mnist1d-transformer",
            {
                "lr": 3e-3,
                "d_model": 32,
                "scheduler": "cosine_warmup",
                "warmup_fraction": 0.1,
                "grad_clip": 1.0,
            },
            3,
            0.3,
        ),
        ("mnist1d-mlp", {"lr": 3e-3}, 10, 0.25),
    ],
)
def test_mnist1d_tasks_learn(
    name: str, params: dict[str, object], epochs: int, floor: float
) -> None:
    task = get_task(name)
    result = train(
        task, load_splits(task), TrainConfig.from_params(params), epochs=epochs, device=CPU, seed=0
    )
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.final.val_metric > floor


def test_models_map_a_batch_of_sequences_to_ten_logits() -> None:
    x = torch.randn(5, 40)
    for name in ("mnist1d-cnn", "mnist1d-transformer", "mnist1d-mlp"):
        model = get_task(name).build_model({"dropout": 0.1})
        assert model(x).shape == (5, 10), name
