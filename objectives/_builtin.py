"""The built-in tasks (none needs a download); finding a task by name or ``module:attribute``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagetune.objectives._mnist1d import (
    build_cnn,
    build_transformer,
    load_mnist1d,
    load_mnist1d_small,
)
from stagetune.objectives._tasks import (
    Splits,
    Task,
    TaskError,
    is_task_reference,
    load_task_reference,
)

if TYPE_CHECKING:
    import torch
    from torch import nn


# --- digits-mlp -------------------------------------------------------------------


def load_digits() -> Splits:
    """scikit-learn's 8x8 digits, scaled to [0, 1]; a fixed, seeded, stratified 60/20/20 split."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=0, stratify=y
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
    )

    def pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(a), torch.from_numpy(b).long()

    return Splits(pair(x_train, y_train), pair(x_val, y_val), pair(x_test, y_test))


def mlp(in_features: int, params: Mapping[str, Any], classes: int = 10) -> nn.Module:
    """An MLP: ``in_features`` -> ``hidden`` (x ``depth``) -> ``classes``, ReLU and dropout.

    Params: ``hidden`` (128), ``depth`` (2), ``dropout`` (0).
    """
    from torch import nn

    hidden = int(params.get("hidden", 128))
    depth = int(params.get("depth", 2))
    dropout = float(params.get("dropout", 0.0))
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def build_mlp(params: Mapping[str, Any]) -> nn.Module:
    """The MLP for the 8x8 digits (64 inputs)."""
    return mlp(64, params)


def build_mnist1d_mlp(params: Mapping[str, Any]) -> nn.Module:
    """The MLP for mnist1d's 40-step sequences."""
    return mlp(40, params)


DIGITS_MLP = Task(
    name="digits-mlp",
    load=load_digits,
    build_model=build_mlp,
    profile="mlp",
    epochs=20,
    description="MLP on scikit-learn's 8x8 digits (1,078 train / 359 val / 360 test)",
)
MNIST1D_CNN = Task(
    name="mnist1d-cnn",
    load=load_mnist1d,
    build_model=build_cnn,
    profile="cnn-scratch",
    epochs=15,
    description="1-D CNN on mnist1d (3,200 train / 800 val / 1,000 test)",
)
MNIST1D_TRANSFORMER = Task(
    name="mnist1d-transformer",
    load=load_mnist1d,
    build_model=build_transformer,
    profile="transformer-scratch",
    epochs=20,
    description="transformer encoder over mnist1d's 40 steps (3,200 / 800 / 1,000)",
)
MNIST1D_MLP = Task(
    name="mnist1d-mlp",
    load=load_mnist1d_small,
    build_model=build_mnist1d_mlp,
    profile="mlp",
    epochs=50,
    description="MLP on 1,000 mnist1d rows: overfits, so regularization matters",
)

#: Built-in tasks; none needs a download.
TASKS: dict[str, Task] = {
    task.name: task for task in (DIGITS_MLP, MNIST1D_CNN, MNIST1D_TRANSFORMER, MNIST1D_MLP)
}


def get_task(name: str) -> Task:
    """A built-in task by name, or your own as ``"module:attribute"``.

    Args:
        name: A key of :data:`TASKS`, or ``"package.module:attribute"`` /
            ``"path/to/file.py:attribute"`` naming a :class:`Task` or a
            function of no arguments that returns one.

    Raises:
        TaskError: No such built-in task, or the reference cannot be loaded.

    Example:
        >>> get_task("digits-mlp").metric_name
        'accuracy'
    """
    if name in TASKS:
        return TASKS[name]
    if is_task_reference(name):
        return load_task_reference(name)
    raise TaskError(
        f"Unknown task {name!r}; available: {sorted(TASKS)}, or your own as "
        f"'module:attribute' (see `stagetune tasks`)."
    )
