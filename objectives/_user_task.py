"""Your own task, named as ``module:attribute`` (CLI ``--task``, TOML, Python).

``package.module:attribute`` imports the module (the working directory is
searched first, like ``python -m``); ``path/to/file.py:attribute`` loads that
file. The attribute is a :class:`~stagetune.objectives.Task`, or a function of no
arguments that returns one (so that building the task can wait until it is
used).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from stagetune.objectives._tasks import Task, TaskError

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
        TaskError: The module or file is not found, the attribute is missing, or
            it is neither a Task nor a function returning one. Errors raised by
            the module's own code propagate unchanged.
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
        value = value()
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
            raise  # the module exists but imports something missing: show the real error
        raise TaskError(
            f"Cannot import module {name!r} for task {reference!r}: run from the directory "
            f"that holds it, put it on PYTHONPATH, or give a file: 'path/to/file.py:attribute'."
        ) from None


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
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
