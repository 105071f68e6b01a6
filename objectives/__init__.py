"""PyTorch training of one trial, with per-epoch reports, pruning and diagnoses."""

from stagetune.objectives._builtin import TASKS, get_task
from stagetune.objectives._checkpoint import (
    CHECKPOINT_ATTR,
    DEFAULT_CHECKPOINT_EVERY,
    CheckpointPolicy,
)
from stagetune.objectives._config import ConfigError, TrainConfig
from stagetune.objectives._device import (
    DeviceError,
    available_devices,
    cuda_device_count,
    resolve_device,
)
from stagetune.objectives._diagnosis import (
    FitDiagnosis,
    LrDiagnosis,
    diagnose_fit,
    diagnose_lr,
    summarize_lr_diagnoses,
)
from stagetune.objectives._final import FinalObjective
from stagetune.objectives._function import (
    FunctionObjective,
    FunctionRangeTestObjective,
    LoopTools,
    RangeTestLoop,
    ReportLog,
    Schedule,
    TrainFunction,
    TrialContext,
)
from stagetune.objectives._model_file import MODEL_ATTR, ModelFile, ModelFileError
from stagetune.objectives._objective import StageObjective
from stagetune.objectives._range_test import RangeTestObjective, RangeTestResult, run_range_test
from stagetune.objectives._tasks import Splits, Task, TaskError, load_splits
from stagetune.objectives._train import (
    NonFiniteLossError,
    default_device,
    evaluate,
    train,
)

__all__ = [
    "CHECKPOINT_ATTR",
    "DEFAULT_CHECKPOINT_EVERY",
    "MODEL_ATTR",
    "TASKS",
    "CheckpointPolicy",
    "ConfigError",
    "DeviceError",
    "FinalObjective",
    "FitDiagnosis",
    "FunctionObjective",
    "FunctionRangeTestObjective",
    "LoopTools",
    "LrDiagnosis",
    "ModelFile",
    "ModelFileError",
    "NonFiniteLossError",
    "RangeTestLoop",
    "RangeTestObjective",
    "RangeTestResult",
    "ReportLog",
    "Schedule",
    "Splits",
    "StageObjective",
    "Task",
    "TaskError",
    "TrainConfig",
    "TrainFunction",
    "TrialContext",
    "available_devices",
    "cuda_device_count",
    "default_device",
    "diagnose_fit",
    "diagnose_lr",
    "evaluate",
    "get_task",
    "load_splits",
    "resolve_device",
    "run_range_test",
    "summarize_lr_diagnoses",
    "train",
]
