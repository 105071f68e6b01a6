from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from stagetune.search._cli import main


def test_run_then_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["--storage", url, "--name", "c"]
    assert main(["run", *args, "--trials", "2", "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best validation accuracy per stage" in out
    for stage in ("lr_range_test", "lr", "weight_decay", "regularization", "final"):
        assert f"  {stage}" in out
    assert "Final hyperparameters:" in out
    assert main(["status", *args]) == 0
    status = capsys.readouterr().out
    assert status.count("2/2 finished") == 3
    assert status.count("1/1 finished") == 2
    assert status.count("done") == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--task", "nope"], "Unknown task 'nope'; available: ['digits-mlp', 'mnist1d"),
        (["run", "--task", "no_such_module:task"], "Cannot import module 'no_such_module'"),
        (["run", "--storage", "foo://bar"], "Unknown database in storage URL 'foo://bar'"),
        (["run", "--storage", "not a url"], "Invalid storage URL 'not a url'"),
        (["run", "--trials", "0"], "--trials must be >= 1, but got 0"),
        (["run", "--workers", "0"], "--workers must be >= 1, but got 0"),
        (["status", "--storage", "/nonexistent/x.db"], "No search database at"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv: list[str], message: str) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "stagetune", *argv], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 2
    assert process.stderr.startswith("stagetune: error: ")
    assert message in process.stderr
    assert process.stderr.count("\n") == 1
    assert "Traceback" not in process.stderr


def test_status_of_missing_search(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from stagetune.storage import open_storage

    open_storage(sqlite_url)
    assert main(["status", "--storage", sqlite_url, "--name", "nope"]) == 2
    assert "No search named 'nope'" in capsys.readouterr().err


def test_help_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from stagetune.search._cli import _parser; _parser(); "
        "print('torch' in sys.modules)"
    )
    # from an empty folder, so that only the installed package can be imported
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "False"


def run_args(url: str, *extra: str) -> list[str]:
    return ["run", "--storage", url, "--name", "c", "--epochs", "2", "--quiet", *extra]


def test_resume_with_another_plan_fails_clearly_unless_new(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run_args(sqlite_url, "--trials", "2")) == 0
    capsys.readouterr()

    assert main(run_args(sqlite_url, "--trials", "3")) == 2
    err = capsys.readouterr().err
    assert "Search 'c' exists in this storage with another plan (stage 'lr' trials 2 -> 3" in err
    assert "add --new to delete it and start over" in err
    other_epochs = [
        "run",
        "--storage",
        sqlite_url,
        "--name",
        "c",
        "--epochs",
        "3",
        "--trials",
        "2",
    ]
    assert main(other_epochs) == 2
    assert "epochs 2 -> 3" in capsys.readouterr().err

    assert main(run_args(sqlite_url, "--trials", "3", "--new")) == 0
    capsys.readouterr()
    assert main(["status", "--storage", sqlite_url, "--name", "c"]) == 0
    assert capsys.readouterr().out.count("3/3 finished") == 3


def test_new_is_refused_while_the_search_has_live_workers(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from stagetune.storage import claim_trial, open_storage

    assert main(run_args(sqlite_url, "--trials", "2")) == 0
    study = optuna.load_study(study_name="c/lr", storage=open_storage(sqlite_url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        claim_trial(study.ask())  # a trial this (live) process runs
    capsys.readouterr()
    assert main(run_args(sqlite_url, "--trials", "3", "--new")) == 2
    assert "has 1 running trial(s) with live workers" in capsys.readouterr().err


def test_status_shows_orphaned_and_retried_trials_and_changes_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna
    from optuna.trial import TrialState

    from stagetune.storage import WORKER_ATTR, claim_trial, open_storage

    assert main(run_args(sqlite_url, "--trials", "2")) == 0
    storage = open_storage(sqlite_url)
    study = optuna.load_study(study_name="c/weight_decay", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()
    claim_trial(trial)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    worker = {**study.trials[-1].system_attrs[WORKER_ATTR], "pid": int(dead.stdout)}
    storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
    capsys.readouterr()

    assert main(["status", "--storage", sqlite_url, "--name", "c"]) == 0
    out = capsys.readouterr().out
    assert "[running 1 (1 orphaned), waiting 0, failed 0, retried 0]" in out
    assert f"trial 2: orphaned, its worker (pid {int(dead.stdout)} on this machine) is gone" in out
    assert study.trials[2].state == TrialState.RUNNING  # status only reads

    # A run recovers it; status then shows the retry and what it replaced.
    from stagetune.storage import recover_dead_trials

    assert recover_dead_trials(study) == [2]
    assert main(["status", "--storage", sqlite_url, "--name", "c"]) == 0
    out = capsys.readouterr().out
    assert "trial 3: retry of trial 2 (its worker died), WAITING" in out


@pytest.mark.parametrize("command", [["status"], ["dashboard", "--port", "1"]])
def test_read_only_commands_on_a_missing_database_create_nothing(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "missing.db"
    assert main([*command, "--storage", f"sqlite:///{db}"]) == 2
    assert "No search database at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_progress_of_workers_is_read_from_storage(sqlite_url: str) -> None:
    from stagetune.search import StagedSearch
    from stagetune.search._cli import _StorageProgress
    from stagetune.spaces import default_plan

    search = StagedSearch(
        default_plan("mlp", n_trials=2), storage=sqlite_url, name="p", epochs=2, progress=None
    )
    bars = _StorageProgress(search)
    bars.poll()  # nothing in storage yet: no bar, no error
    search.run()
    bars.poll()
    # the five steps: range test and final run are one trial each
    assert [bar._bar.n for bar in bars._bars.values()] == [1, 2, 2, 2, 1]
    bars.close()
