from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note

from stagetune.search import StagedSearch
from stagetune.search._notes import search_note, stage_note
from stagetune.search._read import diagnosis_label, find_range_test, summarize_study
from stagetune.spaces import Plan, Stage, core_plan
from stagetune.storage import StageLineage, StudyAttr, write_lineage
from tests.search_tests.conftest import SmallSearch


def note_of(url: str, study: str) -> str:
    return get_note(optuna.load_study(study_name=study, storage=url))


def test_each_stage_note_is_written_when_it_starts_and_updated_when_it_ends(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    at_start: dict[str, str] = {}

    class NoteAtStart:
        """A progress display: it is made once a stage has started, before its trials."""

        def __init__(
            self, stage: Stage, index: int, n_stages: int, finished: int, **_: object
        ) -> None:
            at_start[stage.name] = note_of(url, f"n/{stage.name}")

        def update(self, finished: int, best: float | None) -> None:
            pass

        def close(self) -> None:
            pass

    plan = core_plan("mlp", n_trials=2)
    result = StagedSearch(
        plan, "digits-mlp", storage=url, name="n", epochs=2, progress=NoteAtStart
    ).run()

    assert "## Stage 1 of 3: `lr` (running)" in at_start["lr"]
    assert "Best val_accuracy: none yet." in at_start["lr"]
    assert "Trials: 0/2 finished" in at_start["lr"]
    lr = result.stages[0].best_params["lr"]
    assert f"**Carried in** (best of earlier stages): `lr` = {lr:.4g}." in at_start["weight_decay"]

    for index, summary in enumerate(result.stages):
        note = note_of(url, summary.study_name)
        assert f"## Stage {index + 1} of 3: `{summary.name}` (done)" in note
        assert (
            f"Trials: 2/2 finished: {summary.complete} complete, {summary.pruned} pruned" in note
        )
        assert f"Best val_accuracy: **{summary.best_value:.4g}**" in note
        if index:
            delta = summary.best_value - result.stages[index - 1].best_value  # type: ignore[operator]
            assert (
                f"; {delta:+.4g} against the previous stage `{result.stages[index - 1].name}`"
                in note
            )
    assert "**Why:** Learning rate first" in note_of(url, "n/lr")
    assert "| `lr` | 0.0001 – 0.03, log | 0.001 | Learning Rate / Starting points" in note_of(
        url, "n/lr"
    )


def test_the_first_stage_study_carries_the_search_note(small_search: SmallSearch) -> None:
    note = note_of(small_search.url, "browse/lr")
    search, stage = note.split("\n\n---\n\n")
    assert search.startswith("# Search `browse`")
    assert "task `digits-mlp`, 4 epochs per trial, profile `mlp`" in search
    assert search.count("| done (") == 3
    final = optuna.load_study(study_name="browse/regularization", storage=small_search.url)
    dropout = final.user_attrs["stagetune_best_params"]["dropout"]
    assert f"**Final hyperparameters:** `batch_size` = 64, `dropout` = {dropout:.4g}," in search
    assert stage.startswith("## Stage 1 of 3: `lr` (done)")
    assert not note_of(small_search.url, "browse/weight_decay").startswith("# Search")


def test_stage_studies_name_their_metric(small_search: SmallSearch) -> None:
    for stage in small_search.stages:
        study = optuna.load_study(study_name=f"browse/{stage}", storage=small_search.url)
        assert study.metric_names == ["val_accuracy"]


def _stage_study(trials: list[dict[str, Any]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    write_lineage(
        study,
        StageLineage(
            search="s",
            stage="lr",
            index=0,
            n_stages=1,
            searches={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            carried={},
            budget=len(trials),
            plan="p",
        ),
    )
    distribution = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for trial in trials:
        study.add_trial(
            create_trial(
                state=trial.get("state", TrialState.COMPLETE),
                value=trial.get("value"),
                params={"lr": trial["lr"]},
                distributions={"lr": distribution},
                user_attrs=trial.get("attrs", {}),
            )
        )
    return study


def test_summary_counts_states_pruning_epochs_and_diagnoses() -> None:
    study = _stage_study(
        [
            {"lr": 1e-3, "value": 0.8, "attrs": {"lr_diagnosis": "healthy"}},
            {"lr": 5e-3, "value": 0.9, "attrs": {"diagnosis": {"label": "healthy"}}},
            {
                "lr": 1e-2,
                "state": TrialState.PRUNED,
                "attrs": {"pruned_at_epoch": 3, "diagnosis": "explodes immediately"},
            },
            {"lr": 2e-3, "state": TrialState.FAIL},
        ]
    )
    facts = summarize_study(study)
    assert (facts.complete, facts.pruned, facts.failed, facts.running) == (2, 1, 1, 0)
    assert (facts.best_number, facts.best_value, dict(facts.best_params)) == (1, 0.9, {"lr": 5e-3})
    assert list(facts.pruned_at) == [3]
    assert facts.diagnoses == {"healthy": 2, "explodes immediately": 1}

    plan = Plan((Stage("lr", (lr_param(),), n_trials=4),), {"lr": 1e-3, "dropout": 0.3})
    note = stage_note(plan.stages[0], facts, None, metric="val_accuracy", defaults=plan.defaults)
    assert "Trials: 3/4 finished: 2 complete, 1 pruned, 1 failed. Pruned at epoch(s) 3." in note
    assert "Best val_accuracy: **0.9** (trial 1, `lr` = 0.005)." in note
    assert "**LR diagnosis** (trials per class): explodes immediately: 1, healthy: 2." in note
    assert "**Fixed at the plan's defaults:** `dropout` = 0.3." in note
    assert "against the previous stage" not in note

    summary = search_note(plan, {"lr": facts}, search="s", task="t", epochs=3, metric="m")
    assert "| 1 | `lr` | `lr` | 4 | running (2 complete, 1 pruned) | 0.9 |  |" in summary
    assert "**Hyperparameters so far:** `dropout` = 0.3, `lr` = 0.005." in summary


def test_a_stage_not_started_shows_in_the_search_note() -> None:
    plan = core_plan("mlp", n_trials=2)
    note = search_note(plan, {}, search="s", task="t", epochs=3, metric="m")
    assert note.count("| not started |") == 3


def lr_param() -> Any:
    from stagetune.spaces import FloatParam

    return FloatParam("lr", 1e-4, 1e-2, log=True, source="a guide table")


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("healthy", "healthy"),
        ({"label": "LR too high", "fix": "divide by 10"}, "LR too high"),
        ({"class": "barely moves"}, "barely moves"),
        ({"fix": "?"}, None),
        (None, None),
    ],
)
def test_diagnosis_label(value: Any, label: str | None) -> None:
    assert diagnosis_label(value) == label


def test_a_study_without_lineage_is_refused() -> None:
    with pytest.raises(ValueError, match="has no stagetune lineage"):
        summarize_study(optuna.create_study())


def test_the_range_test_and_its_suggestion_are_in_the_note() -> None:
    study = _stage_study([])
    curve = {
        "lrs": [1e-7, 1e-4, 1e-1],
        "losses": [2.3, 1.2, 9.0],
        "stop_reason": "diverged",
        "min_loss_lr": 1e-4,
        "rule": "min_loss",
        "divisor": 10,
        "suggestion": 1e-5,
    }
    study.set_user_attr(StudyAttr.RANGE_TEST, curve)
    facts = summarize_study(study)
    assert facts.range_test == curve
    stage = Stage("lr", (lr_param(),), n_trials=1)
    note = stage_note(stage, facts, None, metric="m", defaults={})
    assert (
        "**LR range test:** 3 steps from lr 1e-07 to 0.1, stopped: diverged; min-loss lr "
        "0.0001; suggested lr **1e-05** (rule `min_loss`, divided by 10)." in note
    )


def test_a_range_test_is_found_under_any_attribute() -> None:
    assert find_range_test({"curve": {"lrs": [1.0], "losses": [2.0]}}) is not None
    assert find_range_test({"curve": {"lrs": [1.0]}}) is None
