from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stagetune.objectives import Task, TaskError, get_task
from stagetune.objectives._tasks import is_task_reference, load_task_reference

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_model.py"

MODULE = """
from stagetune.objectives import Splits, Task
import torch

def _load():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    return Splits(train=(x, y), val=(x, y))

task = Task(name="mine", load=_load, build_model=lambda params: torch.nn.Linear(2, 2))

def make_task():
    return task

class Holder:
    inner = task

not_a_task = 42
"""


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_tasks.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_tasks", raising=False)
    return tmp_path


def test_references_look_like_module_colon_attribute() -> None:
    assert is_task_reference("pkg.mod:task")
    assert is_task_reference("path/to/file.py:make_task")
    assert not is_task_reference("digits-mlp")
    assert not is_task_reference("mod:")


@pytest.mark.parametrize("attribute", ["task", "make_task", "Holder.inner"])
def test_module_in_the_working_directory(module_dir: Path, attribute: str) -> None:
    task = get_task(f"my_tasks:{attribute}")
    assert isinstance(task, Task) and task.name == "mine"


def test_file_path_reference(module_dir: Path) -> None:
    assert get_task(str(module_dir / "my_tasks.py") + ":make_task").name == "mine"
    assert load_task_reference(f"{EXAMPLE}:task").name == "diabetes-mlp"
    assert load_task_reference(f"{EXAMPLE}:dataset_task").name == "diabetes-mlp-dataset"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("my_tasks:nope", "'my_tasks' has no attribute 'nope'"),
        ("my_tasks:not_a_task", "must be a stagetune.objectives.Task .* but it is int"),
        ("no_such_module_here:task", "Cannot import module 'no_such_module_here'"),
        ("missing/file.py:task", "No file .*missing/file.py"),
    ],
)
def test_bad_references_say_what_is_wrong(module_dir: Path, reference: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        get_task(reference)


def test_a_missing_import_inside_the_module_is_not_hidden(module_dir: Path) -> None:
    (module_dir / "broken_tasks.py").write_text("import not_installed_anywhere\n")
    # Named as what it is (not "cannot import broken_tasks"), with the file and line.
    with pytest.raises(TaskError, match="No module named 'not_installed_anywhere'") as error:
        get_task("broken_tasks:task")
    assert "broken_tasks.py, line 1)" in str(error.value)
    assert isinstance(error.value.__cause__, ModuleNotFoundError)


def test_a_loaded_task_pickles_as_its_reference_for_worker_processes(module_dir: Path) -> None:
    import pickle
    import subprocess

    for reference in (f"{EXAMPLE}:task", "my_tasks:make_task", "digits-mlp"):
        task = get_task(reference)
        data = pickle.dumps(task)
        # A fresh interpreter, as a spawned worker is: it loads the task again.
        code = "import pickle, sys; t = pickle.loads(sys.stdin.buffer.read()); print(t.name)"
        out = subprocess.run(
            [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
        )
        assert out.stdout.decode().strip() == task.name
        assert pickle.loads(data) == task
