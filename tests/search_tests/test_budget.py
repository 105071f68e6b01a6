"""Epoch budgets: claims reserve epochs, pruned trials fund more, exact with workers and faults."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.search import StagedSearch
from stagetune.search._barrier import claim_slot
from stagetune.search._budget import (
    EPOCH_CAP_ATTR,
    CappedPruner,
    StageBudget,
    epoch_targets,
    stage_budget,
    trained_epochs,
)
from stagetune.spaces import core_plan, default_plan
from stagetune.storage import WORKER_ATTR, TrialSystemAttr, open_storage
from tests.conftest import StorageSupplier
from tests.search_tests.nothing_lost import (
    STAGES,
    assert_nothing_lost,
    finish,
    fresh_trials,
    snapshot,
    stagetune,
    start,
    studies,
    wait_until,
)


def new_study(url: str) -> optuna.Study:
    return optuna.create_study(storage=open_storage(url), study_name="e", direction="maximize")


def cap_of(study: optuna.Study, trial: optuna.Trial) -> int:
    return int(study._storage.get_trial(trial._trial_id).system_attrs[EPOCH_CAP_ATTR])


def end(study: optuna.Study, trial: optuna.Trial, epochs: int, state: TrialState) -> None:
    """Report ``epochs`` epochs, then end the trial in ``state``."""
    for step in range(1, epochs + 1):
        trial.report(0.5, step)
    if state == TrialState.COMPLETE:
        study.tell(trial, 0.5)
    else:
        study.tell(trial, state=state)


def test_the_last_stage_caps_its_final_claim_to_what_is_left(sqlite_url: str) -> None:
    study = new_study(sqlite_url)
    budget = StageBudget("epochs", 10, 4, last=True)
    claims = [claim_slot(study, budget, None) for _ in range(4)]
    assert [None if t is None else cap_of(study, t) for t in claims] == [4, 4, 2, None]


def test_a_stage_before_the_last_claims_whole_trials_only(sqlite_url: str) -> None:
    study = new_study(sqlite_url)
    budget = StageBudget("epochs", 10, 4)
    claims = [claim_slot(study, budget, None) for _ in range(3)]
    assert [None if t is None else cap_of(study, t) for t in claims] == [4, 4, None]


def test_a_pruned_trials_unspent_epochs_fund_another_trial(sqlite_url: str) -> None:
    study = new_study(sqlite_url)
    budget = StageBudget("epochs", 9, 4)
    first, second = claim_slot(study, budget, None), claim_slot(study, budget, None)
    assert first is not None and second is not None
    assert claim_slot(study, budget, None) is None  # 8 of 9 epochs reserved
    end(study, first, 1, TrialState.PRUNED)  # trained 1 of its 4: 3 back
    third = claim_slot(study, budget, None)
    assert third is not None and cap_of(study, third) == 4
    end(study, second, 4, TrialState.COMPLETE)
    end(study, third, 2, TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False)
    assert budget.spent(trials) == 1 + 4 + 2
    # 2 epochs left, less than a trial: the stage is over, the rest goes to the next one
    assert claim_slot(study, budget, None) is None
    assert budget.finished(trials)


def test_a_failed_trial_spends_nothing_and_its_retry_reserves_again(sqlite_url: str) -> None:
    from stagetune.storage import fail_and_retry

    study = new_study(sqlite_url)
    budget = StageBudget("epochs", 4, 4, last=True)
    first = claim_slot(study, budget, None)
    assert first is not None
    first.report(0.5, 1)  # an epoch trained, then the worker died
    assert fail_and_retry(study, first._trial_id)
    retry = claim_slot(study, budget, None)
    assert retry is not None and cap_of(study, retry) == 4
    assert study.trials[retry.number].system_attrs["failed_trial"] == first.number


def test_concurrent_epoch_claims_never_exceed_the_allowance(
    storage_supplier: StorageSupplier,
) -> None:
    url = storage_supplier.url()
    study = new_study(url)
    budget = StageBudget("epochs", 10, 3, last=True)
    caps: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        own = optuna.load_study(study_name="e", storage=open_storage(url))
        for _ in range(6):
            trial = claim_slot(own, budget, None)
            if trial is not None:
                with lock:
                    caps.append(cap_of(own, trial))

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(caps) == [1, 3, 3, 3]
    assert len(study.trials) == 4


def test_a_trial_stops_at_its_cap_with_the_reason(sqlite_url: str) -> None:
    study = optuna.create_study(
        storage=open_storage(sqlite_url),
        direction="maximize",
        pruner=CappedPruner(optuna.pruners.NopPruner(), epochs=5),
    )
    trial = claim_slot(study, StageBudget("epochs", 2, 5, last=True), None)
    assert trial is not None
    trial.report(0.1, 1)
    assert not trial.should_prune()
    trial.report(0.2, 2)
    assert trial.should_prune()
    stored = study._storage.get_trial(trial._trial_id)
    assert "stage budget" in stored.user_attrs["prune_reason"]


def test_the_stage_targets_split_the_budget_and_carry_what_is_left() -> None:
    plan = core_plan("mlp", budget=10)
    assert epoch_targets(plan, 4) == {"lr": 18, "weight_decay": 29, "regularization": 40}
    first = stage_budget(plan, 0, epochs=4, spent_before={})
    assert (first.unit, first.amount, first.last) == ("epochs", 18, False)
    # lr trained 16 (four whole trials): its 2 left go to weight decay
    second = stage_budget(plan, 1, epochs=4, spent_before={"lr": 16})
    assert second.amount == 29 - 16
    last = stage_budget(plan, 2, epochs=4, spent_before={"lr": 16, "weight_decay": 12})
    assert (last.amount, last.last) == (40 - 28, True)
    # a plan counting trials counts them
    assert stage_budget(core_plan("mlp", n_trials=3), 1, epochs=4, spent_before={}) == (
        StageBudget.trials(3, 4)
    )


def test_trained_epochs_count_partial_and_non_finite_epochs() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    def trial(steps: int, **attrs: Any) -> optuna.trial.FrozenTrial:
        return create_trial(
            state=TrialState.PRUNED,
            params={"lr": 1e-3},
            distributions={"lr": FloatDistribution(1e-4, 1e-2, log=True)},
            intermediate_values={s: 0.5 for s in range(1, steps + 1)},
            user_attrs=attrs,
        )

    assert trained_epochs(trial(2)) == 2
    assert trained_epochs(trial(1, prune_reason="non-finite training loss nan at epoch 2")) == 2


def test_a_search_spends_exactly_its_epoch_budget_and_resumes_to_nothing(
    sqlite_url: str,
) -> None:
    plan = core_plan("mlp", budget=6)
    search = StagedSearch(
        plan, "digits-mlp", storage=sqlite_url, name="x", epochs=4, progress=None
    )
    result = search.run()
    assert_nothing_lost(sqlite_url, "x", epochs=4, epoch_budget=24)
    assert sum(s.epochs_spent for s in result.stages) == 24
    assert {s.budget_unit for s in result.stages} == {"epochs"}
    # Every trial of the search has its own torch seed, in the order they ran.
    found = studies(sqlite_url, "x")
    assert search.seed_offset(1) == len(found["lr"].trials)
    assert search.seed_offset(2) == len(found["lr"].trials) + len(found["weight_decay"].trials)
    before = snapshot(sqlite_url, "x")
    again = StagedSearch(plan, "digits-mlp", storage=sqlite_url, name="x", epochs=4, progress=None)
    again.run()
    assert snapshot(sqlite_url, "x") == before  # finished: nothing runs


def test_two_workers_spend_exactly_the_epoch_budget(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    code, _, err = finish(start(stagetune(url, "w", "--workers", "2", budget=5, epochs=6)))
    assert code == 0, err
    assert_nothing_lost(url, "w", epochs=6, epoch_budget=30)
    trials = [t for study in studies(url, "w").values() for t in study.trials]
    assert len({t.system_attrs[WORKER_ATTR]["pid"] for t in trials}) == 2


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_worker_resumes_to_exactly_the_epoch_budget(
    tmp_path: Path, signum: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    argv = stagetune(url, "s", budget=5, epochs=30)
    process = start(argv)
    # mid-trial in the second or third stage, after the first closed with its epochs
    wait_until(
        lambda: fresh_trials(url, "s", stages=STAGES[1:]),
        process=process,
        what="a trial of stage 2 or 3 to start",
    )
    os.kill(process.pid, signum)
    finish(process, timeout=120)
    assert process.returncode in (-signum, 128 + signum)
    before = snapshot(url, "s")  # a stopped worker changes no finished trial
    # SIGTERM fails and re-queues the trial at once; after SIGKILL the next worker finds
    # the orphan (dead pid) and does the same.
    code, _, err = finish(start(argv))
    assert code == 0, err
    counts = assert_nothing_lost(url, "s", epochs=30, epoch_budget=150, before=before)
    assert counts["failed"] == counts["retries"] >= 1


@pytest.mark.postgres
def test_kill_one_of_two_postgres_workers_the_epoch_budget_stays_exact(tmp_path: Path) -> None:
    url = StorageSupplier("postgres", tmp_path).url()
    # Trials of 100 epochs, the first worker's seen just after it started: it is killed
    # mid-trial, not at the stage barrier with nothing running to fail.
    epochs = 100
    argv = stagetune(url, "pe", budget=5, epochs=epochs)
    first, second = start(argv), start(argv)
    wait_until(
        lambda: fresh_trials(url, "pe", pid=first.pid),
        process=first,
        what="the first worker to start a trial",
    )
    os.kill(first.pid, signal.SIGKILL)
    finish(first, timeout=60)
    code, _, err = finish(second)
    assert code == 0, err
    counts = assert_nothing_lost(url, "pe", epochs=epochs, epoch_budget=5 * epochs)
    assert counts["failed"] == counts["retries"] == 1


def test_the_cli_status_shows_epochs(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from stagetune.search._cli import main

    argv = ["--storage", sqlite_url, "--name", "c"]
    assert main(["run", *argv, "--budget", "4", "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "budget 4 trial-equivalents = 8 epochs" in out
    assert main(["status", *argv]) == 0
    status = capsys.readouterr().out
    total = 0
    for stage in STAGES:
        line = next(line for line in status.splitlines() if line.split()[:1] == [stage])
        spent, _ = line.split()[1].split("/")
        assert "epochs" in line
        total += int(spent)
    assert total == 8
    assert default_plan("mlp").budget is not None  # the CLI's default plan has a budget too


def test_profiles_show_the_budget_and_the_shares(capsys: pytest.CaptureFixture[str]) -> None:
    from stagetune.search._cli import main

    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "Budget: 22 trial-equivalents of trained epochs (--budget N), split lr 45%, " in out
    assert main(["profiles", "mlp"]) == 0
    plan_file = capsys.readouterr().out
    assert "budget = 22" in plan_file
    assert "share = 0.45" in plan_file


def _reusing(plan: Any) -> Any:
    import dataclasses

    stages = tuple(
        dataclasses.replace(s, incumbent="reuse") if s.name != "lr" else s for s in plan.stages
    )
    return dataclasses.replace(plan, stages=stages)


def test_a_stage_reuses_the_incumbent_instead_of_training_it_again(sqlite_url: str) -> None:
    plan = _reusing(core_plan("mlp", budget=6))
    search = StagedSearch(
        plan, "digits-mlp", storage=sqlite_url, name="r", epochs=4, progress=None
    )
    result = search.run()
    assert_nothing_lost(sqlite_url, "r", epochs=4, epoch_budget=24)
    found = studies(sqlite_url, "r")
    lr_best = found["lr"].best_trial
    first = found["weight_decay"].trials[0]
    assert first.system_attrs[TrialSystemAttr.REUSED] == {
        "study": "r/lr",
        "number": lr_best.number,
    }
    assert first.value == lr_best.value
    assert first.intermediate_values == lr_best.intermediate_values
    assert first.params == {
        "lr": lr_best.params["lr"],
        "weight_decay": plan.defaults["weight_decay"],
    }
    assert trained_epochs(first) == 0
    # the stage's whole share went to new configurations: every other trial trained
    wd = result.stages[1]
    assert wd.epochs_spent == sum(trained_epochs(t) for t in found["weight_decay"].trials[1:])
    # a reused trial that stays best is reused again, naming the trial that trained it
    reg_first = found["regularization"].trials[0]
    if (
        TrialSystemAttr.REUSED in reg_first.system_attrs
        and found["weight_decay"].best_trial is first
    ):
        assert reg_first.system_attrs[TrialSystemAttr.REUSED]["study"] == "r/lr"
    before = snapshot(sqlite_url, "r")
    StagedSearch(plan, "digits-mlp", storage=sqlite_url, name="r", epochs=4, progress=None).run()
    assert snapshot(sqlite_url, "r") == before


def test_a_reused_trial_records_what_retraining_it_would(sqlite_url: str) -> None:
    """Same parameters and distributions as the trial the stage would train instead."""
    plan = core_plan("mlp", budget=6)
    StagedSearch(plan, "digits-mlp", storage=sqlite_url, name="a", epochs=3, progress=None).run()
    StagedSearch(
        _reusing(plan), "digits-mlp", storage=sqlite_url, name="b", epochs=3, progress=None
    ).run()
    retrained = studies(sqlite_url, "a")["weight_decay"].trials[0]
    reused = studies(sqlite_url, "b")["weight_decay"].trials[0]
    assert TrialSystemAttr.REUSED not in retrained.system_attrs
    assert TrialSystemAttr.REUSED in reused.system_attrs
    assert reused.params == retrained.params
    assert reused.distributions == retrained.distributions
    assert reused.user_attrs["config"] == retrained.user_attrs["config"]


def test_a_stage_whose_first_trial_is_another_configuration_trains_it() -> None:
    from stagetune.search._stages import StageContext
    from stagetune.spaces import FloatParam, Stage

    best = optuna.trial.create_trial(
        value=0.9,
        params={"lr": 0.01},
        distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)},
    )
    lr = FloatParam("lr", 1e-4, 1e-1, log=True)
    stage = Stage("wd", (FloatParam("weight_decay", 1e-5, 1e-2, log=True),), 4, incumbent="reuse")
    context = StageContext(last_best=best, last_study="s/lr")
    carried = {"lr": (lr, 0.01)}
    kwargs: dict[str, Any] = {"carried": carried, "fixed": {"lr": 0.01}}
    defaults = {"weight_decay": 1e-4, "dropout": 0.1}
    same = context.reused_trial(stage, first={"weight_decay": 1e-4}, defaults=defaults, **kwargs)
    assert same is not None and same.params == {"lr": 0.01, "weight_decay": 1e-4}
    # the first trial differs from the incumbent (another weight decay, or another lr)
    assert (
        context.reused_trial(stage, first={"weight_decay": 1e-3}, defaults=defaults, **kwargs)
        is None
    )
    other = {"carried": {"lr": (lr, 0.02)}, "fixed": {"lr": 0.02}}
    assert (
        context.reused_trial(stage, first={"weight_decay": 1e-4}, defaults=defaults, **other)
        is None
    )
    # the default outside the stage's range: its first trial is sampled, not reused
    assert context.reused_trial(stage, first={}, defaults=defaults, **kwargs) is None
    retrain = Stage("wd", stage.params, 4)
    assert (
        context.reused_trial(retrain, first={"weight_decay": 1e-4}, defaults=defaults, **kwargs)
        is None
    )
