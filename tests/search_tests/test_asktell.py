"""Ask/tell: trials trained outside the process share the stages, budgets and recovery."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.objectives import TrainFunction
from stagetune.search import AskTell, NoTrialYet, SearchError, StagedSearch
from stagetune.search._asktell import external_search
from stagetune.search._cli import EXIT_SEARCH_DONE, main
from stagetune.spaces import Plan, PrunerSpec, core_plan
from stagetune.storage import WORKER_ATTR
from tests.search_tests.nothing_lost import assert_nothing_lost, studies

EPOCHS = 3


def outside(url: str, plan: Plan, name: str = "out") -> StagedSearch:
    function = TrainFunction(None, name=name, metric_name="loss")
    return StagedSearch(plan, train=function, storage=url, name=name, epochs=EPOCHS, progress=None)


def loss_of(params: dict[str, Any], epoch: int) -> float:
    """A made-up loss: best at lr 3e-3, weight decay 1e-4, dropout 0.1."""
    return (
        abs(params["lr"] - 3e-3) * 100
        + abs(params["weight_decay"] - 1e-4) * 1e3
        + abs(params["dropout"] - 0.1)
        + 1.0 / epoch
    )


def train_outside(session: AskTell, *, stop_at: int | None = None) -> list[Any]:
    """Ask and train until the search is done (or ``stop_at`` trials were asked)."""
    asked = []
    while stop_at is None or len(asked) < stop_at:
        trial = session.ask(timeout=30)
        if trial is None:
            break
        asked.append(trial)
        for epoch in range(1, trial.epochs + 1):
            value = loss_of(trial.params, epoch)
            if session.report(trial.trial_id, epoch, value, train_loss=value, val_loss=value):
                break
        session.tell(trial.trial_id)
    return asked


def test_ask_tell_runs_every_stage_with_its_exact_budget(sqlite_url: str) -> None:
    session = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=3)))
    asked = train_outside(session)
    assert len(asked) == 9
    assert [t.stage for t in asked] == ["lr"] * 3 + ["weight_decay"] * 3 + ["regularization"] * 3
    assert assert_nothing_lost(sqlite_url, "out", budget=3, epochs=EPOCHS)["failed"] == 0
    # the seeds are distinct, as a search's trials' seeds are
    assert len({t.seed for t in asked}) == 9
    lr = studies(sqlite_url, "out")["lr"]
    trial = lr.trials[0]
    assert trial.params["lr"] == 1e-3  # the guide's default first
    assert trial.user_attrs["val_loss_curve"] == [loss_of(asked[0].params, e) for e in (1, 2, 3)]
    assert trial.user_attrs["lr_diagnosis"] and trial.user_attrs["fit_diagnosis"]
    assert session.ask() is None
    result = session.search.result()
    assert result is not None and [s.finished for s in result.stages] == [3, 3, 3]


def test_the_pruner_answers_through_report(sqlite_url: str) -> None:
    plan = core_plan("mlp", n_trials=3)
    pruner = PrunerSpec("median", n_startup_trials=1, warmup_fraction=0.0)
    plan = replace(plan, stages=tuple(replace(s, pruner=pruner) for s in plan.stages))
    session = AskTell(outside(sqlite_url, plan))
    first = session.ask()
    assert first is not None
    for epoch in (1, 2, 3):
        assert session.report(first.trial_id, epoch, 1.0) is False
    assert session.tell(first.trial_id, 1.0) == "COMPLETE"
    worse = session.ask()
    assert worse is not None
    assert session.report(worse.trial_id, 1, 5.0) is True  # worse than the median: stop
    frozen = studies(sqlite_url, "out")["lr"].trials[worse.number]
    assert frozen.state == TrialState.PRUNED and frozen.user_attrs["pruned_at_epoch"] == 1
    assert session.tell(worse.trial_id, 5.0) == "PRUNED"  # a late tell changes nothing
    with pytest.raises(SearchError, match="is not running: it is PRUNED"):
        session.report(worse.trial_id, 2, 5.0)


def test_a_failed_trial_makes_room_for_another(sqlite_url: str) -> None:
    session = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2)))
    trial = session.ask()
    assert trial is not None
    assert session.fail(trial.trial_id, "the trainer crashed") == "FAIL"
    train_outside(session)
    lr = studies(sqlite_url, "out")["lr"]
    assert lr.trials[0].user_attrs["fail_reason"] == "the trainer crashed"
    assert [t.state for t in lr.trials].count(TrialState.FAIL) == 1
    assert len(lr.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_a_trial_asked_and_never_told_is_failed_and_retried(sqlite_url: str) -> None:
    """The asking process dies (a killed job): the next ask fails its trial and hands
    out the retry, with the same parameters."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        gone = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2)), owner=owner.pid)
        first = gone.ask()
        second = gone.ask()
        assert first is not None and second is not None
        assert gone.report(first.trial_id, 1, 1.0) is False
        frozen = studies(sqlite_url, "out")["lr"].trials[first.number]
        assert frozen.system_attrs[WORKER_ATTR]["pid"] == owner.pid
        # the stage's 2 slots are taken while the owner lives
        with pytest.raises(NoTrialYet, match="2 running, 0/2 finished"):
            AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2))).ask(timeout=0)
    finally:
        owner.kill()
        owner.wait()
    session = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2)))
    retry = session.ask(timeout=30)
    assert retry is not None and retry.params == first.params
    lr = studies(sqlite_url, "out")["lr"]
    assert lr.trials[first.number].state == TrialState.FAIL
    assert lr.trials[retry.number].system_attrs["failed_trial"] == first.number
    with pytest.raises(SearchError, match="is not running: it is FAIL"):
        gone.report(first.trial_id, 2, 1.0)
    for epoch in range(1, EPOCHS + 1):
        session.report(retry.trial_id, epoch, 1.0)
    session.tell(retry.trial_id)
    train_outside(session)
    counts = assert_nothing_lost(sqlite_url, "out", budget=2, epochs=EPOCHS)
    assert counts["failed"] == 2 and counts["retries"] == 2


def test_tell_checks_the_trial(sqlite_url: str) -> None:
    session = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2)))
    trial = session.ask()
    assert trial is not None
    with pytest.raises(SearchError, match="No trial with id 999"):
        session.tell(999, 1.0)
    with pytest.raises(SearchError, match="tell a value, or report an epoch"):
        session.tell(trial.trial_id)
    with pytest.raises(SearchError, match="epoch must be an integer >= 0, but got -1"):
        session.report(trial.trial_id, -1, 1.0)
    other = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2), name="other"))
    with pytest.raises(SearchError, match="is not a trial of search 'other'"):
        other.tell(trial.trial_id, 1.0)
    assert session.tell(trial.trial_id, float("nan")) == "PRUNED"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out.strip()


def test_the_commands_take_part_in_a_search(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--storage", sqlite_url, "--name", "cli"]
    start = ["ask", *common, "--trials", "1", "--epochs", "2", "--direction", "maximize"]
    code, out = run_cli([*start, "--metric", "accuracy"], capsys)
    assert code == 0
    trial = json.loads(out)
    assert trial["stage"] == "lr_range_test" or trial["stage"] == "lr"
    assert trial["epochs"] == 2 and trial["direction"] == "maximize"
    assert set(trial) >= {"trial_id", "params", "seed", "number", "study"}
    # a later command needs only the storage and the name
    argv = ["tell-epoch", *common, "--trial", str(trial["trial_id"]), "--epoch", "1"]
    assert run_cli([*argv, "--value", "0.5", "--train-loss", "1.2"], capsys) == (0, "continue")
    assert run_cli(["tell", *common, "--trial", str(trial["trial_id"]), "--last"], capsys) == (
        0,
        "COMPLETE",
    )
    study = optuna.load_study(study_name=trial["study"], storage=sqlite_url)
    assert study.trials[0].value == 0.5 and study.metric_names == ["val_accuracy"]
    states: list[str] = []
    for _ in range(10):
        code, out = run_cli(["ask", *common], capsys)
        if code == EXIT_SEARCH_DONE:
            break
        asked = json.loads(out)
        tell = ["tell", *common, "--trial", str(asked["trial_id"])]
        if asked["stage"] == "weight_decay" and "FAIL" not in states:
            states.append(run_cli([*tell, "--failed", "out of memory"], capsys)[1])
            continue
        states.append(run_cli([*tell, "--value", str(asked["number"] + 1)], capsys)[1])
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]  # weight_decay twice
    done = json.loads(out)
    assert done["done"] is True and done["best_params"]["lr"] == trial["params"]["lr"]
    # another plan for the same name is refused with what differs
    code = main(["ask", *common, "--trials", "2"])
    assert code == 2
    assert "trials 1 -> 2" in capsys.readouterr().err


def test_external_search_reads_what_is_stored(sqlite_url: str) -> None:
    session = AskTell(outside(sqlite_url, core_plan("mlp", n_trials=2)))
    assert session.ask() is not None
    again = external_search(sqlite_url, "out")
    assert again.fingerprint() == session.search.fingerprint()
    assert again.epochs == EPOCHS and again.task.metric_name == "loss"
