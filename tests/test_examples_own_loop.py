"""The own-loop examples run to the end of every stage, and resume after a kill.

``examples/own_loop.py``: a train function (dict batches, two loss terms) through
``StagedSearch(train=...)``, the LR range test driving its model and loss.
``examples/ask_tell.sh``: a command-line trainer tuned through ``stagetune ask`` /
``tell-epoch`` / ``tell``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.search_tests.nothing_lost import (
    assert_nothing_lost,
    studies,
    wait_until,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)


def launch(argv: list[str], started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "STAGETUNE": f"{sys.executable} -m stagetune",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the whole job
    )
    started.append(process)
    return process


def trial_states(url: str) -> set[str]:
    """The states of the search stages' trials (not the range test's) in the SQLite file,
    in one cheap query: a trial of these small examples lasts well under a second,
    shorter than loading each study."""
    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    query = (
        "SELECT t.state FROM trials t JOIN studies s ON t.study_id = s.study_id "
        "WHERE s.study_name NOT LIKE '%/lr_range_test'"
    )
    try:
        return {state for (state,) in connection.execute(query)}
    finally:
        connection.close()


def kill_mid_trial(process: subprocess.Popen[str], url: str) -> None:
    """SIGKILL the job's process group once a search trial finished and another runs."""
    wait_until(
        lambda: {"RUNNING"} <= (states := trial_states(url)) and states & {"COMPLETE", "PRUNED"},
        timeout=600,
        process=process,
        what="a finished trial and a running one",
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def one_trial_stages(url: str, name: str, stages: tuple[str, ...]) -> None:
    for stage in stages:
        study = optuna.load_study(study_name=f"{name}/{stage}", storage=url)
        assert len(study.get_trials(states=FINISHED)) == 1, stage
        assert study.user_attrs["stagetune_done"] is True


def test_own_loop_example_runs_every_stage_and_resumes_after_a_kill(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'own_loop.db'}"
    argv = [sys.executable, str(EXAMPLES / "own_loop.py"), "--storage", url]
    argv += ["--trials", "2", "--epochs", "20"]
    kill_mid_trial(launch(argv, processes), url)

    process = launch(argv, processes)
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    counts = assert_nothing_lost(url, "digits-two-losses", budget=2, epochs=20)
    assert counts["failed"] == counts["retries"] <= 1  # the killed trial, run again
    one_trial_stages(url, "digits-two-losses", ("lr_range_test", "final"))
    found = studies(url, "digits-two-losses", ("lr_range_test", "lr"))
    test = found["lr_range_test"].user_attrs["stagetune_lr_range_test"]
    window = found["lr"].user_attrs["stagetune_lr_window"]
    assert window["suggestion"] == pytest.approx(test["suggestion"]) or window["clipped"]
    trial = found["lr"].best_trial
    assert trial.user_attrs["lr_diagnosis"] and trial.user_attrs["fit_diagnosis"]
    assert trial.value is not None and trial.value > 0.8  # val accuracy on 10 digits
    assert "final hyperparameters:" in out


def test_ask_tell_example_tunes_a_command_line_trainer_and_resumes_after_a_kill(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'ask_tell.db'}"
    argv = ["bash", str(EXAMPLES / "ask_tell.sh"), url, "2", "2"]
    kill_mid_trial(launch(argv, processes), url)

    process = launch(argv, processes)
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    assert out.startswith("finished: ")
    counts = assert_nothing_lost(url, "sine-cli", budget=2, epochs=2)
    assert counts["failed"] == counts["retries"] <= 1  # the killed job's trial
    one_trial_stages(url, "sine-cli", ("final",))
    lr = studies(url, "sine-cli", ("lr",))["lr"]
    assert lr.metric_names == ["val_mse"] and lr.direction.name == "MINIMIZE"
    trial = lr.best_trial
    assert trial.value is not None and trial.value < 0.5  # the variance of sin is 0.5
    assert len(trial.user_attrs["train_loss_curve"]) == 2
