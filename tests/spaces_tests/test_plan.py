from __future__ import annotations

import pytest
from optuna.pruners import MedianPruner, NopPruner, SuccessiveHalvingPruner

from stagetune.spaces import (
    DEFAULT_BUDGET,
    FloatParam,
    Plan,
    PrunerSpec,
    RangeTestSpec,
    SpaceError,
    Stage,
    core_plan,
    default_plan,
)
from stagetune.spaces import _guide as guide


def test_default_plan_is_the_guides_five_steps() -> None:
    plan = default_plan("mlp")
    assert [s.name for s in plan.stages] == [
        "lr_range_test",
        "lr",
        "weight_decay",
        "regularization",
        "final",
    ]
    assert [s.kind for s in plan.stages] == [
        "lr_range_test",
        "search",
        "search",
        "regularization",
        "final",
    ]
    assert [s.param_names for s in plan.stages] == [
        ("lr",),
        ("lr",),
        ("weight_decay",),
        ("dropout",),
        (),
    ]
    assert plan.stage("lr_range_test").range_test == RangeTestSpec()
    assert plan.stage("final").early_stopping_patience == guide.EARLY_STOPPING_PATIENCE[0]


def test_core_plan_is_lr_then_weight_decay_then_regularization() -> None:
    plan = core_plan("mlp")
    assert [s.name for s in plan.stages] == ["lr", "weight_decay", "regularization"]
    assert [s.param_names for s in plan.stages] == [("lr",), ("weight_decay",), ("dropout",)]


def test_default_plan_ranges_equal_the_guides_tables() -> None:
    plan = default_plan("mlp")
    lr = plan.stage("lr").param("lr")
    row = guide.LEARNING_RATE["adamw_scratch"]
    assert (lr.low, lr.high, lr.log) == (row.search_low, row.search_high, True)  # type: ignore[union-attr]
    assert lr.source == row.source
    wd = plan.stage("weight_decay").param("weight_decay")
    assert (wd.low, wd.high) == (min(guide.WEIGHT_DECAY_GRID), max(guide.WEIGHT_DECAY_GRID))  # type: ignore[union-attr]
    assert "Step 3" in wd.source
    dropout = plan.stage("regularization").param("dropout")
    assert (dropout.low, dropout.high) == (0.0, guide.DROPOUT["fc"].high)  # type: ignore[union-attr]
    assert plan.defaults["lr"] == row.default
    assert plan.defaults["weight_decay"] == guide.STEP_ONE["adamw"].weight_decay
    assert plan.defaults["dropout"] == guide.DROPOUT["fc"].low


def test_every_default_lies_in_the_range_that_searches_it() -> None:
    plan = default_plan("mlp")
    for stage in plan.stages:
        for param in stage.params:
            assert param.contains(plan.defaults[param.name]), param.name


def test_with_trials_sets_every_search_budget_but_not_the_single_runs() -> None:
    assert [s.n_trials for s in default_plan("mlp", n_trials=4).stages] == [1, 4, 4, 4, 1]


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(SpaceError, match=r"Unknown profile 'cnnn'; available: \[.*'mlp'"):
        default_plan("cnnn")


def test_stage_kinds_are_validated() -> None:
    lr = FloatParam("lr", 1e-4, 1e-2, log=True)
    with pytest.raises(SpaceError, match="unknown kind 'warmup'; allowed"):
        Stage("x", (lr,), n_trials=2, kind="warmup")  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match="runs one trial, so n_trials must be 1"):
        Stage("lr_range_test", (lr,), n_trials=2, kind="lr_range_test")
    with pytest.raises(SpaceError, match="exactly one parameter, 'lr'"):
        Stage("t", (FloatParam("dropout", 0.0, 0.5),), n_trials=1, kind="lr_range_test")
    with pytest.raises(SpaceError, match="a final stage searches nothing"):
        Stage("final", (lr,), n_trials=1, kind="final")
    with pytest.raises(SpaceError, match="epochs applies to kind 'final' only"):
        Stage("lr", (lr,), n_trials=2, epochs=5)
    with pytest.raises(SpaceError, match="range_test applies to kind 'lr_range_test' only"):
        Stage("lr", (lr,), n_trials=2, range_test=RangeTestSpec())
    with pytest.raises(SpaceError, match="early_stopping_patience must be an integer >= 1"):
        Stage("final", (), n_trials=1, kind="final", early_stopping_patience=0)
    assert Stage("t", (lr,), n_trials=1, kind="lr_range_test").range_test == RangeTestSpec()


def test_stage_validation() -> None:
    lr = FloatParam("lr", 1e-4, 1e-2, log=True)
    with pytest.raises(SpaceError, match="n_trials must be >= 1, but got 0"):
        Stage("lr", (lr,), n_trials=0)
    with pytest.raises(SpaceError, match="without '/'"):
        Stage("a/b", (lr,), n_trials=2)
    with pytest.raises(SpaceError, match=r"listed twice: \['lr'\]"):
        Stage("lr", (lr, lr), n_trials=2)


def test_plan_rejects_duplicate_stage_names() -> None:
    stage = Stage("lr", (FloatParam("lr", 1e-4, 1e-2, log=True),), n_trials=2)
    with pytest.raises(SpaceError, match=r"\['lr'\] appear twice"):
        Plan((stage, stage), {})


def test_pruner_spec_builds_optuna_pruners_with_a_late_first_rung() -> None:
    median = PrunerSpec("median", n_startup_trials=2, warmup_fraction=0.5).build(epochs=10)
    assert isinstance(median, MedianPruner)
    assert median._n_warmup_steps == 5
    assert isinstance(PrunerSpec("none").build(10), NopPruner)
    assert isinstance(PrunerSpec("successive_halving").build(10), SuccessiveHalvingPruner)
    with pytest.raises(SpaceError, match="unknown kind 'hyper'"):
        PrunerSpec("hyper")  # type: ignore[arg-type]


def test_fingerprint_changes_with_ranges_and_budgets() -> None:
    plan = default_plan("mlp")
    assert plan.fingerprint() == default_plan("mlp").fingerprint()
    assert plan.fingerprint() != plan.with_trials(3).fingerprint()


# --- epoch budgets ----------------------------------------------------------------------


def test_profile_plans_split_an_epoch_budget_by_the_stages_shares() -> None:
    plan = default_plan("mlp")
    assert plan.budget == DEFAULT_BUDGET
    # the guide's priority order: the learning rate first and most, then equal parts
    assert plan.stage_fractions() == pytest.approx(
        {"lr": 0.45, "weight_decay": 0.275, "regularization": 0.275}
    )
    # the range test and the final run are single runs outside the budget
    assert plan.stage("lr_range_test").share is None
    assert plan.stage("final").share is None
    assert default_plan("mlp", budget=40).budget == 40


def test_counting_trials_drops_the_epoch_budget() -> None:
    plan = default_plan("mlp", n_trials=4)
    assert plan.budget is None
    assert default_plan("mlp").with_trials(3).budget is None
    with pytest.raises(SpaceError, match="not both"):
        default_plan("mlp", n_trials=4, budget=10)


def test_shares_are_relative_to_each_other() -> None:
    lr = FloatParam("lr", 1e-4, 1e-2, log=True)
    plan = Plan(
        (Stage("a", (lr,), n_trials=1, share=3), Stage("b", (lr,), n_trials=1, share=1)),
        {},
        budget=8,
    )
    assert plan.stage_fractions() == {"a": 0.75, "b": 0.25}


@pytest.mark.parametrize(
    ("share", "message"),
    [
        (0, "share must be > 0, but got 0"),
        (-1.0, "share must be > 0, but got -1.0"),
        (float("nan"), "share must be > 0, but got nan"),
        ("half", "share must be a number > 0, but got 'half'"),
        (True, "share must be a number > 0, but got True"),
    ],
)
def test_a_bad_share_fails_when_the_stage_is_built(share: object, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        Stage("lr", (FloatParam("lr", 1e-4, 1e-2, log=True),), n_trials=1, share=share)  # type: ignore[arg-type]


def test_single_runs_take_no_share() -> None:
    with pytest.raises(SpaceError, match="runs one trial outside the epoch budget"):
        Stage("final", (), n_trials=1, kind="final", share=0.2)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (0, r"budget: must be an integer >= 1 \(trial-equivalents\), but got 0"),
        (2.5, "budget: must be an integer >= 1"),
        (
            3,
            "stage 'weight_decay' gets 0.83 trial-equivalents of 3, less than one trial; "
            "give a budget of at least 4",
        ),
    ],
)
def test_a_budget_that_cannot_fund_every_stage_fails(budget: object, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        core_plan("mlp").with_budget(budget)  # type: ignore[arg-type]


def test_a_budget_needs_a_stage_with_a_share() -> None:
    lr = FloatParam("lr", 1e-4, 1e-2, log=True)
    with pytest.raises(SpaceError, match="no stage of the plan has a share"):
        Plan((Stage("lr", (lr,), n_trials=2),), {}, budget=5)


def test_the_budget_and_shares_are_part_of_the_fingerprint() -> None:
    plan = core_plan("mlp")
    assert plan.with_budget(30).fingerprint() != plan.fingerprint()
    assert plan.with_trials(10).fingerprint() != plan.fingerprint()
    # a plan counting trials has no budget key: a search started before budgets resumes
    assert "budget" not in plan.with_trials(10).to_dict()
