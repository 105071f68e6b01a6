"""The five-step default plan, end to end, and what each stage kind leaves in the database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.objectives import ConfigError
from stagetune.search import StagedSearch
from stagetune.search._cli import main
from stagetune.search._stages import (
    StageContext,
    validate_plan,
)
from stagetune.spaces import (
    FloatParam,
    Plan,
    Stage,
    default_plan,
    get_profile,
    load_plan,
    plan_to_toml,
)
from stagetune.spaces._guide import LEARNING_RATE
from stagetune.storage import StudyAttr, open_storage

FIVE = ("lr_range_test", "lr", "weight_decay", "regularization", "final")


def studies(url: str, name: str) -> dict[str, optuna.Study]:
    storage = open_storage(url)
    return {
        s.study_name.split("/")[1]: optuna.load_study(study_name=s.study_name, storage=storage)
        for s in storage.get_all_studies()
        if s.study_name.startswith(f"{name}/")
    }


@pytest.fixture(scope="module")
def five_step_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The default plan from the CLI with tiny budgets: its storage URL and its output."""
    url = f"sqlite:///{tmp_path_factory.mktemp('five') / 'five.db'}"
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            ["run", "--storage", url, "--name", "f", "--trials", "3", "--epochs", "4", "--quiet"]
        )
    assert code == 0
    return url, out.getvalue()


def test_the_default_plan_runs_range_test_to_final_from_the_cli(
    five_step_run: tuple[str, str],
) -> None:
    url, out = five_step_run
    found = studies(url, "f")
    assert sorted(found) == sorted(FIVE)
    for name, study in found.items():
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        assert len(finished) == (1 if name in ("lr_range_test", "final") else 3), name
        assert study.user_attrs["stagetune_done"] is True
    assert "suggested lr=" in out and "test_accuracy=" in out
    assert "diagnosis:" in out


def test_the_range_tests_curve_and_suggestion_are_in_the_database(
    five_step_run: tuple[str, str],
) -> None:
    url, _ = five_step_run
    study = studies(url, "f")["lr_range_test"]
    curve = study.user_attrs[StudyAttr.RANGE_TEST]
    assert len(curve["lrs"]) == len(curve["losses"]) > 50
    assert curve["lrs"][0] == 1e-7
    assert curve["stop_reason"] in ("diverged", "plateau", "end")
    row = LEARNING_RATE["adamw_scratch"]
    assert row.search_low <= curve["suggestion"] <= row.search_high
    assert curve["suggestion"] == pytest.approx(curve["min_loss_lr"] / 10)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.trials[0].params["lr"] == pytest.approx(curve["suggestion"])


def test_the_lr_stage_searches_the_window_and_starts_at_the_suggestion(
    five_step_run: tuple[str, str],
) -> None:
    url, _ = five_step_run
    found = studies(url, "f")
    window = found["lr"].user_attrs[StudyAttr.LR_WINDOW]
    suggestion = found["lr_range_test"].user_attrs[StudyAttr.RANGE_TEST]["suggestion"]
    assert window["low"] == pytest.approx(max(1e-4, suggestion / 10), rel=1e-3)
    assert window["high"] == pytest.approx(min(3e-2, suggestion * 10), rel=1e-3)
    lr_trials = found["lr"].trials
    assert lr_trials[0].params["lr"] == pytest.approx(suggestion)
    assert all(window["low"] <= t.params["lr"] <= window["high"] for t in lr_trials)
    assert found["lr"].user_attrs["stagetune_searches"]["lr"]["low"] == window["low"]


def test_regularization_records_its_diagnosis_and_searches_that_way(
    five_step_run: tuple[str, str],
) -> None:
    url, _ = five_step_run
    found = studies(url, "f")
    fit = found["regularization"].user_attrs[StudyAttr.FIT_DIAGNOSIS]
    wd_best = found["weight_decay"].best_trial
    assert fit["from_trial"] == wd_best.number
    assert fit["label"] == wd_best.user_attrs["fit_diagnosis"]
    dropout = fit["ranges"]["dropout"]
    current = found["weight_decay"].best_trial.params.get("dropout", 0.3)
    expected = {+1: (current, 0.5), -1: (0.0, current), 0: (0.0, 0.5)}[fit["direction"]]
    assert (dropout["low"], dropout["high"]) == pytest.approx(expected)
    for trial in found["regularization"].trials:
        assert dropout["low"] <= trial.params["dropout"] <= dropout["high"]


def test_every_trial_has_its_lr_diagnosis_and_each_stage_a_summary(
    five_step_run: tuple[str, str],
) -> None:
    url, _ = five_step_run
    for name, study in studies(url, "f").items():
        if name == "lr_range_test":
            continue
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        assert all("lr_diagnosis" in t.user_attrs for t in finished)
        summary = study.user_attrs[StudyAttr.LR_DIAGNOSES]
        assert sum(summary.values()) == len(finished)


def test_the_final_run_uses_every_tuned_value_and_scores_the_test_split(
    five_step_run: tuple[str, str],
) -> None:
    url, _ = five_step_run
    found = studies(url, "f")
    final = found["final"]
    trial = final.trials[0]
    assert trial.params["lr"] == found["lr"].best_params["lr"]
    assert trial.params["weight_decay"] == found["weight_decay"].best_params["weight_decay"]
    assert trial.params["dropout"] == found["regularization"].best_params["dropout"]
    summary = final.user_attrs[StudyAttr.FINAL]
    assert 0.5 < summary["test_metric"] <= 1.0
    assert summary["epochs_run"] == 4 and summary["val_metric"] == trial.value


def test_running_the_five_steps_again_adds_no_trial(five_step_run: tuple[str, str]) -> None:
    url, _ = five_step_run
    before = {n: len(s.trials) for n, s in studies(url, "f").items()}
    search = StagedSearch(
        default_plan("mlp", n_trials=3),
        "digits-mlp",
        storage=url,
        name="f",
        epochs=4,
        progress=None,
    )
    search.run()
    assert {n: len(s.trials) for n, s in studies(url, "f").items()} == before


def frozen(train: list[float], val: list[float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params={}, distributions={}, value=0.9,
        user_attrs={"train_loss_curve": train, "val_loss_curve": val},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("train", "val", "expected"),
    [
        ([1.0, 0.3, 0.1, 0.05], [1.0, 0.4, 0.3, 0.35], (0.2, 0.5)),  # overfitting: more
        ([2.0, 1.5, 1.2, 1.0], [1.9, 1.4, 1.1, 0.95], (0.0, 0.2)),  # underfitting: less
        ([1.0, 0.6, 0.4, 0.3], [1.0, 0.7, 0.5, 0.34], (0.0, 0.5)),  # good fit: both ways
    ],
)
def test_step_4_cuts_the_range_at_the_current_value(
    train: list[float], val: list[float], expected: tuple[float, float]
) -> None:
    stage = get_profile("mlp").templates["regularization"]
    context = StageContext(last_best=frozen(train, val))
    resolved = context.resolve(stage, {}, {"dropout": 0.2})
    dropout = resolved.param("dropout")
    assert (dropout.low, dropout.high) == expected  # type: ignore[union-attr]
    assert (
        context.attrs["regularization"][StudyAttr.FIT_DIAGNOSIS]["ranges"]["dropout"]["low"]
        == expected[0]
    )


def test_step_4_with_nothing_left_on_that_side_keeps_the_full_range() -> None:
    stage = get_profile("mlp").templates["regularization"]
    context = StageContext(last_best=frozen([2.0, 1.5, 1.2, 1.0], [1.9, 1.4, 1.1, 0.95]))
    resolved = context.resolve(stage, {}, {"dropout": 0.0})
    assert resolved.param("dropout") == stage.param("dropout")
    assert context.attrs["regularization"][StudyAttr.FIT_DIAGNOSIS]["applied"] is False


def test_bad_values_fail_before_any_training(tmp_path: Path) -> None:
    plan = default_plan("mlp")
    bad_default = Plan(plan.stages, {**plan.defaults, "optimizer": "lion"})
    with pytest.raises(ConfigError, match="plan defaults: optimizer must be one of"):
        validate_plan(bad_default)
    wide = plan.stage("regularization").param("dropout")
    stages = tuple(
        s
        if s.name != "regularization"
        else Stage("regularization", (FloatParam("dropout", 0.0, 1.5),), n_trials=2)
        for s in plan.stages
    )
    assert wide.high == 0.5
    with pytest.raises(
        ConfigError, match="stage 'regularization', parameter 'dropout': dropout must be in"
    ):
        StagedSearch(Plan(stages, plan.defaults), "digits-mlp", storage=str(tmp_path / "x.db"))

    path = tmp_path / "plan.toml"
    path.write_text('[defaults]\noptimizer = "lion"\n')
    db = tmp_path / "cli.db"
    process = subprocess.run(
        [sys.executable, "-m", "stagetune", "run", "--config", str(path), "--storage", str(db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert process.returncode == 2
    assert "optimizer must be one of" in process.stderr and process.stderr.count("\n") == 1
    assert open_storage(f"sqlite:///{db}").get_all_studies() == []


def test_a_plan_file_with_a_batch_size_stage_scales_the_lr(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        """
trials = 2
[defaults]
batch_size = 32
lr = 2e-3
[[stages]]
name = "batch_size"
[stages.params.batch_size]
type = "categorical"
choices = [32, 128]
[stages.sampler]
kind = "grid"
[[stages]]
name = "final"
"""
    )
    url = f"sqlite:///{tmp_path / 'b.db'}"
    assert (
        main(
            [
                "run",
                "--config",
                str(path),
                "--storage",
                url,
                "--name",
                "b",
                "--epochs",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    found = studies(url, "b")
    assert sorted(found) == ["batch_size", "final"]
    for trial in found["batch_size"].trials:
        batch = trial.params["batch_size"]
        assert trial.user_attrs["config"]["lr"] == pytest.approx(2e-3 * batch / 32)


def test_profiles_are_listed_and_each_prints_as_a_plan_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in (
        "mlp",
        "cnn-scratch",
        "transformer-finetune",
        "transformer-pretrain",
        "vit-scratch",
        "resnet50-imagenet",
        "bert-finetune",
        "vit-imagenet",
        "gpt-pretrain",
    ):
        assert f"  {name} " in out
    assert main(["profiles", "bert-finetune"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "bert.toml"
    path.write_text(text)
    assert load_plan(path) == default_plan("bert-finetune")
    assert plan_to_toml(default_plan("bert-finetune")) in text
    assert main(["profiles", "nope"]) == 2


def test_notes_and_metric_names_tell_the_range_test_apart(five_step_run: tuple[str, str]) -> None:
    from optuna_dashboard import get_note

    url, _ = five_step_run
    found = studies(url, "f")
    assert found["lr_range_test"].metric_names == ["range_test_min_loss"]
    assert all(
        s.metric_names == ["val_accuracy"] for n, s in found.items() if n != "lr_range_test"
    )
    suggestion = found["lr_range_test"].user_attrs[StudyAttr.RANGE_TEST]["suggestion"]
    search_note, range_note = get_note(found["lr_range_test"]).split("\n\n---\n\n")
    assert (
        "**LR range test:**" in range_note
        and "Minimum of the smoothed training loss" in range_note
    )
    assert "Best val_accuracy" not in range_note
    assert f"lr {suggestion:.4g} suggested" in search_note
    # the LR stage is compared with no earlier stage (the range test scores a loss) ...
    assert "against the previous stage" not in get_note(found["lr"])
    # ... and its note shows the window it searched and where it came from
    assert "LR range test: min_loss LR / 10" in get_note(found["lr"])
    assert "against the previous stage `lr`" in get_note(found["weight_decay"])


def test_the_report_plots_the_range_test_and_leaves_its_loss_out_of_the_metric(
    five_step_run: tuple[str, str], tmp_path: Path
) -> None:
    from stagetune.search._report import write_report

    url, _ = five_step_run
    files = write_report(open_storage(url), "f", out_dir=tmp_path)
    names = {p.name for p in files.images}
    assert "lr_range_test-lr-range-test.png" in names
    assert "best-per-stage.png" in names
    html = files.html.read_text()
    assert "LR range test" in html and "range_test_min_loss" in html


def test_a_best_value_at_the_edge_of_its_range_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An LR range that ends at the default, below the good LRs: its best sits at the top."""
    from optuna_dashboard import get_note

    url = f"sqlite:///{tmp_path / 'edge.db'}"
    plan = Plan(
        (Stage("lr", (FloatParam("lr", 1e-7, 1e-3, log=True),), n_trials=3),),
        defaults={**get_profile("mlp").defaults, "lr": 1e-3},
    )
    (tmp_path / "plan.toml").write_text(plan_to_toml(plan))
    config = str(tmp_path / "plan.toml")
    run = ["run", "--task", "digits-mlp", "--storage", url, "--name", "e", "--epochs", "3"]
    code = main([*run, "--config", config])
    assert code == 0
    study = studies(url, "e")["lr"]
    assert study.best_trial.params["lr"] == 1e-3  # the default, the top of the range
    edges = study.user_attrs[StudyAttr.RANGE_EDGES]
    assert edges == {"lr": {"value": 1e-3, "low": 1e-7, "high": 1e-3, "side": "high"}}
    line = "best lr=0.001 at the top of its range [1e-07, 0.001]: the optimum may lie above it"
    assert line in capsys.readouterr().out
    assert f"**At the edge:** {line}" in get_note(study)
