"""Tune your own PyTorch model with stagetune.

A task is four things: the data, how to build the model from the
hyperparameters, the loss, and the metric with its direction. This one
regresses disease progression on scikit-learn's diabetes data (it ships with
scikit-learn, nothing is downloaded) and minimises the validation MSE.

From the shell::

    stagetune run --task examples/own_model.py:task --trials 4 --epochs 30

From Python::

    python examples/own_model.py            # runs the search below
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from stagetune.objectives import Splits, Task


# 1) The data: train and validation splits, as (inputs, targets) tensors.
#    Small data like this lives on the device and is batched by index.
def load() -> Splits:
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    # A fixed split (random_state), so that every trial and every worker sees the same data.
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=0)
    # Standardise with the training split's statistics only.
    x_mean, x_std = x_train.mean(0), x_train.std(0)
    y_mean, y_std = y_train.mean(), y_train.std()

    def pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = torch.tensor((a - x_mean) / x_std, dtype=torch.float32)
        targets = torch.tensor((b - y_mean) / y_std, dtype=torch.float32)
        return inputs, targets.unsqueeze(1)

    return Splits(train=pair(x_train, y_train), val=pair(x_val, y_val), test=pair(x_test, y_test))


# 2) The model, built from the trial's hyperparameters. `params` holds `dropout`
#    (searched by the regularization stage) and any other model parameter the
#    plan sets; defaults here cover the rest.
def build_model(params: Mapping[str, Any]) -> nn.Module:
    hidden = int(params.get("hidden", 64))
    dropout = float(params.get("dropout", 0.0))
    return nn.Sequential(
        nn.Linear(10, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, 1),
    )


# 3) The loss to train on (a mean over the batch) and 4) the metric each epoch reports.
def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs, targets)


def val_mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(nn.functional.mse_loss(outputs, targets).item())


task = Task(
    name="diabetes-mlp",
    load=load,
    build_model=build_model,
    loss=mse,
    metric=val_mse,
    metric_name="mse",
    direction="minimize",
    profile="mlp",  # lr -> weight_decay -> dropout, AdamW from scratch
    epochs=30,
    description="MLP regression on scikit-learn's diabetes data (examples/own_model.py)",
)


# Data that does not fit in memory, or that is transformed on the fly, comes as a
# torch Dataset of (input, target) items instead; it goes through a DataLoader
# (pinned memory and worker processes on CUDA).
class DiabetesDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


def load_datasets() -> Splits:
    splits = load()
    return Splits(
        train=DiabetesDataset(*splits.train),  # type: ignore[misc]
        val=DiabetesDataset(*splits.val),  # type: ignore[misc]
    )


def dataset_task() -> Task:
    """The same task reading Datasets: ``--task examples/own_model.py:dataset_task``."""
    return dataclasses.replace(
        task,
        name="diabetes-mlp-dataset",
        load=load_datasets,
        description="the same regression, its data as torch Datasets (examples/own_model.py)",
    )


if __name__ == "__main__":
    from stagetune.search import StagedSearch
    from stagetune.spaces import default_plan

    search = StagedSearch(
        default_plan("mlp", n_trials=4),
        task,  # the Task object itself
        storage="sqlite:///own_model.db",
        name="diabetes",
        epochs=30,
    )
    result = search.run()
    print(f"best validation MSE {result.best_value:.4f} with {result.best_params}")
