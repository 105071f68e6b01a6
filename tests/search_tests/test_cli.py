from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from search._cli import main


def test_run_then_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["--storage", url, "--name", "c"]
    assert main(["run", *args, "--trials", "2", "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best validation accuracy per stage" in out
    for stage in ("lr", "weight_decay", "regularization"):
        assert f"  {stage}" in out
    assert "Final hyperparameters:" in out
    assert main(["status", *args]) == 0
    status = capsys.readouterr().out
    assert status.count("2/2 finished") == 3
    assert status.count("done") == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--task", "nope"], "Unknown task 'nope'; available: ['digits-mlp']"),
        (["run", "--storage", "foo://bar"], "Unknown database in storage URL 'foo://bar'"),
        (["run", "--storage", "not a url"], "Invalid storage URL 'not a url'"),
        (["run", "--trials", "0"], "--trials must be >= 1, but got 0"),
        (["status", "--storage", "/nonexistent/x.db"], "No search database at"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv: list[str], message: str) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "search", *argv], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 2
    assert process.stderr.startswith("stagetune: error: ")
    assert message in process.stderr
    assert process.stderr.count("\n") == 1
    assert "Traceback" not in process.stderr


def test_status_of_missing_search(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from storage import open_storage

    open_storage(sqlite_url)
    assert main(["status", "--storage", sqlite_url, "--name", "nope"]) == 2
    assert "No search named 'nope'" in capsys.readouterr().err


def test_help_does_not_import_torch() -> None:
    code = "import sys; from search._cli import _parser; _parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
