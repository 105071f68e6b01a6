"""Tasks: a model builder, data splits, a loss and a metric."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn


class TaskError(ValueError):
    """An unknown task or a task that cannot be used."""


@dataclass(frozen=True)
class Splits:
    """Train, validation and test tensors ``(inputs, targets)``, on the CPU."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the target."""
    return float((logits.argmax(dim=-1) == targets).float().mean().item())


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets)


@dataclass(frozen=True)
class Task:
    """What a trial trains and how it is scored.

    Args:
        name: Task name, as given to ``--task``.
        load: Returns the data splits (called once per process, then cached).
        build_model: ``build_model(params)`` returns a fresh ``nn.Module``;
            ``params`` holds ``dropout`` and any parameter the plan adds.
        loss: ``loss(outputs, targets)`` -> scalar tensor to minimise.
        metric: ``metric(outputs, targets)`` -> float reported each epoch.
        metric_name: Name of the metric (``"accuracy"``).
        direction: ``"maximize"`` or ``"minimize"`` the metric.
        profile: The profile whose plan suits this task.
        epochs: Epochs per trial unless the user says otherwise.
    """

    name: str
    load: Callable[[], Splits]
    build_model: Callable[[Mapping[str, Any]], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy
    metric: Callable[[torch.Tensor, torch.Tensor], float] = accuracy
    metric_name: str = "accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"
    profile: str = "mlp"
    epochs: int = 20

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise TaskError(
                f"task {self.name!r}: direction must be 'maximize' or 'minimize', "
                f"but got {self.direction!r}."
            )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise TaskError(f"task {self.name!r}: epochs must be >= 1, but got {self.epochs!r}.")


_SPLITS_CACHE: dict[str, Splits] = {}


def load_splits(task: Task) -> Splits:
    """The task's splits, loaded once per process."""
    if task.name not in _SPLITS_CACHE:
        _SPLITS_CACHE[task.name] = task.load()
    return _SPLITS_CACHE[task.name]


# --- digits-mlp -------------------------------------------------------------------


def _load_digits() -> Splits:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    # A fixed, seeded, stratified 60/20/20 split.
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=0, stratify=y
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
    )

    def pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(a), torch.from_numpy(b).long()

    return Splits(pair(x_train, y_train), pair(x_val, y_val), pair(x_test, y_test))


def build_mlp(params: Mapping[str, Any]) -> nn.Module:
    """An MLP for the 8x8 digits: 64 -> hidden (x depth) -> 10, ReLU and dropout."""
    from torch import nn

    hidden = int(params.get("hidden", 128))
    depth = int(params.get("depth", 2))
    dropout = float(params.get("dropout", 0.0))
    layers: list[nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


DIGITS_MLP = Task(name="digits-mlp", load=_load_digits, build_model=build_mlp, profile="mlp")

#: Built-in tasks; none needs a download.
TASKS: dict[str, Task] = {DIGITS_MLP.name: DIGITS_MLP}


def get_task(name: str) -> Task:
    """A built-in task by name.

    Example:
        >>> get_task("digits-mlp").metric_name
        'accuracy'
    """
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"Unknown task {name!r}; available: {sorted(TASKS)}.") from None
