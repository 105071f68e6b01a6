"""The task protocol: a model builder, data splits, a loss, a metric and its direction.

A task is what a trial trains. The built-in tasks (``stagetune.objectives.TASKS``) are
instances of :class:`Task`; so is a task of your own, which you pass to
``StagedSearch`` as an object or to the CLI as ``--task module:attribute``.

Your own task, named as ``module:attribute`` (CLI ``--task``, TOML, Python):
``package.module:attribute`` imports the module (the working directory is
searched first, like ``python -m``); ``path/to/file.py:attribute`` loads that
file. The attribute is a :class:`Task`, or a function of no arguments that returns
one (so that building the task can wait until it is used). Such a task pickles as
its reference (worker processes load it the same way), which is why the loader
lives beside :class:`Task`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    #: One split: ``(inputs, targets)`` tensors, or a Dataset of ``(input, target)`` items.
    Data = tuple[torch.Tensor, torch.Tensor] | Dataset[Any]


class TaskError(ValueError):
    """An unknown task or a task that cannot be used; the message says why."""


@dataclass(frozen=True)
class Splits:
    """The data of a task: train and validation (and optionally test) splits.

    Each split is either a pair of tensors ``(inputs, targets)`` with the same
    number of rows, or a ``torch.utils.data.Dataset`` whose items are
    ``(input, target)`` pairs. Tensors are moved to the training device once
    and batched by index (no DataLoader: the fast path for data that fits in
    memory); a Dataset goes through a ``DataLoader`` (pinned memory and worker
    processes on CUDA).

    Args:
        train: What the model is trained on.
        val: What every epoch is scored on (the value a trial reports).
        test: Held out; never used by a search.

    Raises:
        TaskError: A split is neither a pair of tensors nor a Dataset, or its
            inputs and targets differ in length, or it is empty.
    """

    train: Data
    val: Data
    test: Data | None = None

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            data = getattr(self, name)
            if data is None and name == "test":
                continue
            _check_data(name, data)


def _check_data(name: str, data: Any) -> None:
    import torch

    if isinstance(data, torch.utils.data.Dataset):
        if not hasattr(data, "__len__"):
            raise TaskError(f"The {name} Dataset must have a length (define __len__).")
        if len(data) == 0:
            raise TaskError(f"The {name} split is empty.")
        return
    if (
        not isinstance(data, (tuple, list))
        or len(data) != 2
        or not all(isinstance(t, torch.Tensor) for t in data)
    ):
        raise TaskError(
            f"The {name} split must be a pair of tensors (inputs, targets) or a "
            f"torch.utils.data.Dataset, but got {type(data).__name__}."
        )
    inputs, targets = data
    if inputs.dim() == 0 or targets.dim() == 0 or len(inputs) != len(targets):
        raise TaskError(
            f"The {name} split has {len(inputs) if inputs.dim() else 0} inputs but "
            f"{len(targets) if targets.dim() else 0} targets; they must match row for row."
        )
    if len(inputs) == 0:
        raise TaskError(f"The {name} split is empty.")


def is_tensor_data(data: Any) -> bool:
    """Whether a split is a pair of tensors (the fast path) rather than a Dataset."""
    return isinstance(data, (tuple, list))


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the target (class indices)."""
    return float((outputs.argmax(dim=-1) == targets).float().mean().item())


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` on logits and class indices."""
    import torch.nn.functional as F

    return F.cross_entropy(outputs, targets)


@dataclass(frozen=True)
class Task:
    """What a trial trains and how it is scored.

    To tune your own model, build a ``Task`` (see ``examples/own_model.py``)::

        task = Task(
            name="my-model",
            load=load_my_data,               # () -> Splits(train=(x, y), val=(x, y))
            build_model=build_my_model,      # (params) -> nn.Module
            loss=torch.nn.functional.mse_loss,
            metric=my_r2, metric_name="r2", direction="maximize",
        )

    Args:
        name: Task name, as shown by ``stagetune tasks`` and stored on the studies.
        load: ``load()`` returns the :class:`Splits`. It is called once per
            process and cached, so it may do work (read files, generate data);
            it should be deterministic, so that every worker sees the same split.
        build_model: ``build_model(params)`` returns a fresh ``nn.Module``.
            ``params`` holds ``dropout`` and every plan parameter that is not a
            training-loop setting (e.g. ``hidden``, ``depth``). Called with torch
            already seeded for the trial.
        loss: ``loss(outputs, targets)`` returns a scalar tensor to minimise; it
            must be a mean over the batch (gradient accumulation relies on it).
        metric: ``metric(outputs, targets)`` returns a float; it is computed on
            the whole validation split after every epoch and reported to Optuna.
        metric_name: Name of the metric (``"accuracy"``), used in messages.
        direction: ``"maximize"`` or ``"minimize"`` the metric.
        profile: The profile whose plan suits this model (``stagetune profiles``).
        epochs: Epochs per trial unless the user says otherwise.
        num_workers: DataLoader worker processes for Dataset splits; ``None``:
            up to 4 on CUDA, 0 on the CPU (where workers would compete with
            training for the cores). Tensor splits never use a DataLoader.
        description: One line for ``stagetune tasks``.
        source: The ``module:attribute`` reference the task was loaded from (set by
            :func:`stagetune.objectives.get_task`); a task with a source is pickled as that
            reference, so that worker processes can load it again.
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
    num_workers: int | None = None
    description: str = ""
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TaskError(f"A task needs a non-empty name, but got {self.name!r}.")
        for field_name in ("load", "build_model", "loss", "metric"):
            if not callable(getattr(self, field_name)):
                raise TaskError(
                    f"task {self.name!r}: {field_name} must be callable, but got "
                    f"{getattr(self, field_name)!r}."
                )
        if self.direction not in ("maximize", "minimize"):
            raise TaskError(
                f"task {self.name!r}: direction must be 'maximize' or 'minimize', "
                f"but got {self.direction!r}."
            )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise TaskError(f"task {self.name!r}: epochs must be >= 1, but got {self.epochs!r}.")
        if self.num_workers is not None and (
            isinstance(self.num_workers, bool)
            or not isinstance(self.num_workers, int)
            or self.num_workers < 0
        ):
            raise TaskError(
                f"task {self.name!r}: num_workers must be None or an integer >= 0, "
                f"but got {self.num_workers!r}."
            )

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        if self.source is not None:
            return (load_task_reference, (self.source,))
        return super().__reduce_ex__(protocol)

    def better(self, value: float, than: float) -> bool:
        """Whether metric ``value`` is strictly better than ``than`` in this task's direction."""
        return value > than if self.direction == "maximize" else value < than


_SPLITS_CACHE: dict[tuple[str, Callable[[], Splits]], Splits] = {}


def load_splits(task: Task) -> Splits:
    """The task's splits, loaded once per process (keyed by name and loader).

    Raises:
        TaskError: ``task.load()`` did not return a :class:`Splits`.
    """
    key = (task.name, task.load)
    if key not in _SPLITS_CACHE:
        splits = task.load()
        if not isinstance(splits, Splits):
            raise TaskError(
                f"task {task.name!r}: load() must return stagetune.objectives.Splits(train=..., "
                f"val=...), but returned {type(splits).__name__}."
            )
        _SPLITS_CACHE[key] = splits
    return _SPLITS_CACHE[key]


# -- your own task, by reference ---------------------------------------------------

_REFERENCE = re.compile(r"^(?P<module>[^:]+):(?P<attribute>[A-Za-z_][\w.]*)$")


def is_task_reference(text: str) -> bool:
    """Whether ``text`` looks like ``module:attribute`` or ``file.py:attribute``.

    Example:
        >>> is_task_reference("examples/own_model.py:task"), is_task_reference("digits-mlp")
        (True, False)
    """
    return _REFERENCE.match(text) is not None


def load_task_reference(reference: str) -> Task:
    """The :class:`Task` that ``reference`` (``module:attribute``) names.

    Raises:
        TaskError: The module or file is not found, the attribute is missing, it
            is neither a Task nor a function returning one, or the module's own
            code (or the function) raised: then the message names the exception
            and the line of the user's code it came from.
    """
    match = _REFERENCE.match(reference)
    if match is None:
        raise TaskError(
            f"Task reference {reference!r} must look like 'package.module:attribute' or "
            f"'path/to/file.py:attribute'."
        )
    module, source = _import(match["module"], reference)
    value: object = module
    for part in match["attribute"].split("."):
        if not hasattr(value, part):
            raise TaskError(
                f"{match['module']!r} has no attribute {match['attribute']!r} "
                f"(task reference {reference!r})."
            )
        value = getattr(value, part)
    if not isinstance(value, Task) and callable(value):
        try:
            value = value()
        except Exception as error:
            raise TaskError(
                _user_code_error(f"Calling {reference!r} to build the task", error, source)
            ) from error
    if not isinstance(value, Task):
        raise TaskError(
            f"{reference!r} must be a stagetune.objectives.Task or a function of no arguments "
            f"that returns one, but it is {type(value).__name__}."
        )
    # Remembered, so that pickling (worker processes) loads the task the same way.
    return dataclasses.replace(value, source=f"{source}:{match['attribute']}")


def _import(name: str, reference: str) -> tuple[ModuleType, str]:
    """The module, and how to name it from any working directory."""
    if name.endswith(".py") or os.sep in name or "/" in name:
        module = _import_file(Path(name), reference)
        return module, str(module.__file__)
    if "" not in sys.path and os.getcwd() not in sys.path:
        # Like `python -m`: modules in the working directory can be named.
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name), name
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            # The module exists but imports something missing: that is the error to show.
            raise TaskError(
                _user_code_error(f"Importing {name!r} for task {reference!r}", error, name)
            ) from error
        raise TaskError(
            f"Cannot import module {name!r} for task {reference!r}: run from the directory "
            f"that holds it, put it on PYTHONPATH, or give a file: 'path/to/file.py:attribute'."
        ) from None
    except Exception as error:
        raise TaskError(
            _user_code_error(f"Importing {name!r} for task {reference!r}", error, name)
        ) from error


def _import_file(path: Path, reference: str) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise TaskError(f"No file {str(path)!r} for task {reference!r}.")
    module_name = "stagetune_task_" + re.sub(r"\W", "_", path.stem)
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"Cannot load {str(path)!r} as Python for task {reference!r}.")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so that dataclasses and pickling inside it work.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules[module_name]
        if not isinstance(error, Exception):
            raise  # KeyboardInterrupt, SystemExit
        raise TaskError(
            _user_code_error(f"Loading {str(path)!r} for task {reference!r}", error, str(path))
        ) from error
    return module


def _user_code_error(what: str, error: Exception, source: str) -> str:
    """One line for an exception raised by the user's own code: what failed, the
    exception, and the line of their code it came from."""
    where = ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f" ({error.filename}, line {error.lineno})"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        own = [f for f in frames if source in (f.filename, Path(f.filename).stem)]
        if own or frames:
            frame = (own or frames)[-1]
            where = f" ({frame.filename}, line {frame.lineno})"
    text = (error.msg if isinstance(error, SyntaxError) else str(error)).strip().splitlines()
    detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    fix = "install it or fix that import" if isinstance(error, ImportError) else "fix that code"
    return f"{what} failed: {detail}{where}; {fix}, then run again."
