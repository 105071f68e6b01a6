"""PyTorch training of one trial, with per-epoch reports and pruning."""

from objectives._config import ConfigError, TrainConfig
from objectives._objective import StageObjective
from objectives._tasks import TASKS, Splits, Task, TaskError, get_task
from objectives._train import NonFiniteLossError, default_device, train

__all__ = [
    "TASKS",
    "ConfigError",
    "NonFiniteLossError",
    "Splits",
    "StageObjective",
    "Task",
    "TaskError",
    "TrainConfig",
    "default_device",
    "get_task",
    "train",
]
