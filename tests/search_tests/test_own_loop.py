"""A staged search over a train function: budgets, pruning, notes, workers, resume."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.objectives import TrainFunction, TrialContext
from stagetune.objectives._function import NO_RANGE_TEST
from stagetune.search import SearchError, StagedSearch, run_workers
from stagetune.spaces import Plan, PrunerSpec, core_plan, default_plan
from tests.search_tests.nothing_lost import assert_nothing_lost, studies

EPOCHS = 4


def made_up(params: dict[str, Any], ctx: TrialContext) -> float:
    """A loop without a model: a loss curve that depends on the parameters."""
    gap = abs(params["lr"] - 3e-3) * 100 + abs(params["dropout"] - 0.1)
    value = 0.0
    for epoch in range(1, ctx.epochs + 1):
        value = gap + 1.0 / epoch
        ctx.report(epoch, value, train_loss=value * 0.8, val_loss=value)
    return value


FUNCTION = TrainFunction(made_up, metric_name="loss")


def search(url: str, plan: Plan, **kwargs: Any) -> StagedSearch:
    return StagedSearch(
        plan, train=FUNCTION, storage=url, name="own", epochs=EPOCHS, progress=None, **kwargs
    )


def eager(plan: Plan) -> Plan:
    """Every stage prunes from the first epoch after one finished trial."""
    pruner = PrunerSpec("median", n_startup_trials=1, warmup_fraction=0.0)
    return replace(plan, stages=tuple(replace(s, pruner=pruner) for s in plan.stages))


def test_every_stage_runs_its_exact_budget_and_prunes_through_report(sqlite_url: str) -> None:
    result = search(sqlite_url, eager(core_plan("mlp", n_trials=5))).run()
    assert [s.finished for s in result.stages] == [5, 5, 5]
    assert_nothing_lost(sqlite_url, "own", budget=5, epochs=EPOCHS)
    pruned = [
        t
        for study in studies(sqlite_url, "own").values()
        for t in study.get_trials(states=(TrialState.PRUNED,))
    ]
    assert pruned, "no trial was pruned"
    for trial in pruned:
        at = trial.user_attrs["pruned_at_epoch"]
        assert max(trial.intermediate_values) == at < EPOCHS
        assert len(trial.user_attrs["val_loss_curve"]) == at
    assert result.best_params["lr"] == studies(sqlite_url, "own")["lr"].best_params["lr"]


def test_without_a_range_test_loop_stage_0_is_skipped_and_the_note_says_so(
    sqlite_url: str,
) -> None:
    from optuna_dashboard import get_note

    plan = default_plan("mlp", n_trials=2)
    own = search(sqlite_url, plan)
    assert [s.name for s in own.plan.stages] == ["lr", "weight_decay", "regularization", "final"]
    own.run()
    lr = optuna.load_study(study_name="own/lr", storage=sqlite_url)
    assert NO_RANGE_TEST in get_note(lr)
    final = optuna.load_study(study_name="own/final", storage=sqlite_url)
    trial = final.best_trial
    assert trial.user_attrs["best_epoch"] == EPOCHS  # the made-up loss falls every epoch
    assert trial.user_attrs["epochs_run"] == EPOCHS


def test_resuming_needs_the_same_function_name_and_plan(sqlite_url: str) -> None:
    search(sqlite_url, core_plan("mlp", n_trials=2)).run()
    assert search(sqlite_url, core_plan("mlp", n_trials=2)).run().stages[0].finished == 2
    other = TrainFunction(made_up, name="another", metric_name="loss")
    renamed = StagedSearch(
        core_plan("mlp", n_trials=2), train=other, storage=sqlite_url, name="own", epochs=EPOCHS
    )
    with pytest.raises(SearchError, match="task 'made_up' -> 'another'"):
        renamed.prepare()
    with pytest.raises(SearchError, match="not both"):
        StagedSearch(core_plan("mlp"), "digits-mlp", train=made_up)


def test_two_worker_processes_share_a_function_search(sqlite_url: str) -> None:
    own = search(sqlite_url, core_plan("mlp", n_trials=4))
    result, exits = run_workers(own, 2)
    assert [e.exitcode for e in exits] == [0, 0]
    assert result is not None
    assert_nothing_lost(sqlite_url, "own", budget=4, epochs=EPOCHS)


# the made-up losses leave Optuna's importance estimate nothing to tell apart
@pytest.mark.filterwarnings("ignore:Target and region quantiles select the same set")
def test_status_report_and_export_read_a_function_search(
    sqlite_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from stagetune.search._cli import main

    search(sqlite_url, eager(core_plan("mlp", n_trials=3))).run()
    args = ["--storage", sqlite_url, "--name", "own"]
    assert main(["status", *args]) == 0
    assert capsys.readouterr().out.count("3/3 finished") == 3
    assert main(["export", *args, "--out", str(tmp_path / "t.csv")]) == 0
    header = (tmp_path / "t.csv").read_text().splitlines()[0]
    assert "value_val_loss" in header and "user_attrs_val_loss_curve" in header
    assert main(["report", *args, "--out", str(tmp_path)]) == 0
    html = (tmp_path / "own-report.html").read_text()
    assert "val_loss" in html and "regularization" in html
