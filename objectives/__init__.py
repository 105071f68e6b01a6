"""PyTorch training of one trial, with per-epoch reports and pruning."""

from objectives._builtin import TASKS, get_task
from objectives._config import ConfigError, TrainConfig
from objectives._objective import StageObjective
from objectives._tasks import Splits, Task, TaskError, load_splits
from objectives._train import (
    NonFiniteLossError,
    configure_threads,
    default_device,
    evaluate,
    train,
)

__all__ = [
    "TASKS",
    "ConfigError",
    "NonFiniteLossError",
    "Splits",
    "StageObjective",
    "Task",
    "TaskError",
    "TrainConfig",
    "configure_threads",
    "default_device",
    "evaluate",
    "get_task",
    "load_splits",
    "train",
]
