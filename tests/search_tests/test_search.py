from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.search import SearchError, SearchResult, StagedSearch
from stagetune.spaces import FloatParam, Plan, Stage, core_plan
from stagetune.storage import open_storage, study_name


def run_search(url: str, plan: Plan, name: str = "s", epochs: int = 2) -> SearchResult:
    search = StagedSearch(plan, "digits-mlp", storage=url, name=name, epochs=epochs, progress=None)
    return search.run()


def finished_counts(url: str, name: str, stages: list[str]) -> list[int]:
    storage = open_storage(url)
    counts = []
    for stage in stages:
        study = optuna.load_study(study_name=study_name(name, stage), storage=storage)
        counts.append(len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))))
    return counts


def test_three_stage_search_carries_each_best_forward(
    storage_supplier: object, tiny_plan: Plan
) -> None:
    url = storage_supplier.url()  # type: ignore[attr-defined]
    search = StagedSearch(tiny_plan, "digits-mlp", storage=url, name="s", epochs=2, progress=None)
    result = search.run()
    storage = open_storage(url)
    names = sorted(s.study_name for s in storage.get_all_studies())
    assert names == ["s/lr", "s/regularization", "s/weight_decay"]

    lr_study = optuna.load_study(study_name="s/lr", storage=storage)
    wd_study = optuna.load_study(study_name="s/weight_decay", storage=storage)
    reg_study = optuna.load_study(study_name="s/regularization", storage=storage)
    best_lr = lr_study.best_params["lr"]
    best_wd = wd_study.best_params["weight_decay"]
    assert all(t.params["lr"] == best_lr for t in wd_study.trials)
    assert all(t.params["lr"] == best_lr for t in reg_study.trials)
    assert all(t.params["weight_decay"] == best_wd for t in reg_study.trials)
    assert result.best_params["lr"] == best_lr

    attrs = wd_study.user_attrs
    assert attrs["stagetune_stage"] == "weight_decay"
    assert attrs["stagetune_stage_index"] == 1
    assert attrs["stagetune_carried"] == {"lr": best_lr}
    assert list(attrs["stagetune_searches"]) == ["weight_decay"]
    assert attrs["stagetune_done"] is True
    assert attrs["stagetune_best_params"] == {"weight_decay": best_wd}
    assert attrs["stagetune_best_value"] == wd_study.best_value
    assert [s.finished for s in result.stages] == [3, 3, 3]


def test_first_trial_of_each_stage_is_the_guides_default_or_the_carried_value(
    sqlite_url: str, tiny_plan: Plan
) -> None:
    run_search(sqlite_url, tiny_plan)
    storage = open_storage(sqlite_url)
    first = {
        stage: optuna.load_study(study_name=f"s/{stage}", storage=storage).trials[0].params
        for stage in ("lr", "weight_decay", "regularization")
    }
    assert first["lr"] == {"lr": tiny_plan.defaults["lr"]}
    assert first["weight_decay"]["weight_decay"] == tiny_plan.defaults["weight_decay"]
    assert first["regularization"]["dropout"] == tiny_plan.defaults["dropout"]


def test_running_a_finished_search_again_adds_no_trial(sqlite_url: str, tiny_plan: Plan) -> None:
    run_search(sqlite_url, tiny_plan)
    before = [len(s.trials) for s in _studies(sqlite_url)]
    run_search(sqlite_url, tiny_plan)
    assert [len(s.trials) for s in _studies(sqlite_url)] == before


def test_resume_with_another_plan_fails_clearly(sqlite_url: str, tiny_plan: Plan) -> None:
    run_search(sqlite_url, tiny_plan)
    with pytest.raises(SearchError, match="exists in this storage with another plan"):
        run_search(sqlite_url, tiny_plan.with_trials(4))


@pytest.mark.filterwarnings("ignore:Fixed parameter lr with value")
def test_nan_loss_ends_one_trial_not_the_search(sqlite_url: str, tiny_plan: Plan) -> None:
    # The stage's first trial (queued before the search starts, outside the
    # stage's range) uses a learning rate that makes the loss diverge.
    stage = Stage("lr", (FloatParam("lr", 1e-3, 1e-2, log=True),), n_trials=3)
    plan = Plan((stage,), tiny_plan.defaults)
    storage = open_storage(sqlite_url)
    study = optuna.create_study(storage=storage, study_name="s/lr", direction="maximize")
    study.enqueue_trial({"lr": 1e12})

    result = run_search(sqlite_url, plan)

    trials = optuna.load_study(study_name="s/lr", storage=storage).trials
    assert trials[0].params["lr"] == 1e12
    assert trials[0].state == TrialState.PRUNED
    assert "non-finite training loss" in trials[0].user_attrs["prune_reason"]
    assert result.stages[0].finished == 3
    assert result.stages[0].complete == 2


def _studies(url: str) -> list[optuna.Study]:
    storage = open_storage(url)
    return [
        optuna.load_study(study_name=s.study_name, storage=storage)
        for s in sorted(storage.get_all_studies(), key=lambda s: s.study_name)
    ]


def test_trials_are_seeded_in_the_order_they_run_across_stages() -> None:
    import dataclasses
    from collections.abc import Mapping
    from typing import Any

    import torch

    from stagetune.objectives import get_task

    digits = get_task("digits-mlp")
    seeds: list[int] = []

    def build(params: Mapping[str, Any]) -> torch.nn.Module:
        seeds.append(torch.initial_seed())
        return digits.build_model(params)

    task = dataclasses.replace(digits, build_model=build)
    plan = Plan(
        tuple(
            dataclasses.replace(stage, n_trials=n)
            for stage, n in zip(core_plan("mlp").stages, (3, 2, 1), strict=True)
        ),
        core_plan("mlp").defaults,
    )
    search = StagedSearch(
        plan, task, storage=optuna.storages.InMemoryStorage(), epochs=1, seed=7, progress=None
    )
    assert [search.seed_offset(i) for i in range(3)] == [0, 3, 5]
    search.run()
    # As in a joint search: trial i of the whole search trains with seed 7 + i.
    # (each trial builds its model twice with its seed: once to measure the untrained
    # model's loss for the diagnoses, once to train)
    assert list(dict.fromkeys(seeds)) == [7, 8, 9, 10, 11, 12]
    assert len(seeds) == 2 * 6
