"""Plan files: TOML round trips, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagetune.spaces import (
    DEFAULT_BUDGET,
    PROFILES,
    CategoricalParam,
    FloatParam,
    Plan,
    PlanFileError,
    PrunerSpec,
    RangeTestSpec,
    SamplerSpec,
    Stage,
    default_plan,
    load_plan,
    plan_from_toml,
    plan_to_toml,
)
from stagetune.spaces._config import TRAINING_PARAMS


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_round_trips_through_a_file(profile: str, tmp_path: Path) -> None:
    plan = default_plan(profile, n_trials=3)
    path = tmp_path / "plan.toml"
    path.write_text(plan_to_toml(plan))
    loaded = load_plan(path)
    assert loaded == plan
    assert loaded.fingerprint() == plan.fingerprint()


def test_a_custom_plan_round_trips() -> None:
    plan = Plan(
        (
            Stage(
                "clip",
                (CategoricalParam("grad_clip", (None, 1.0, 5.0), source="mine"),),
                n_trials=3,
                sampler=SamplerSpec("grid"),
                pruner=PrunerSpec("none"),
            ),
            Stage(
                "both",
                (FloatParam("lr", 1e-4, 1e-1, log=True), FloatParam("dropout", 0.0, 0.4)),
                n_trials=5,
                sampler=SamplerSpec("random", n_startup_trials=2),
                kind="regularization",
                why='a "quoted" reason',
            ),
            Stage(
                "lrt",
                (FloatParam("lr", 1e-4, 1e-1, log=True),),
                n_trials=1,
                kind="lr_range_test",
                range_test=RangeTestSpec(num_iter=50, divisor=3.0),
            ),
            Stage("final", (), n_trials=1, kind="final", epochs=7, early_stopping_patience=3),
        ),
        {"lr": 1e-3, "grad_clip": None, "milestones": [0.5, 0.75], "hidden": 32, "act": "relu"},
        profile="custom",
    )
    text = plan_to_toml(plan)
    assert "[model]" in text and 'grad_clip = "none"' in text
    assert plan_from_toml(text) == plan


def test_a_short_file_changes_a_profile(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        """
profile = "mlp"
trials = 4

[defaults]
lr = 3e-3
grad_clip = 1.0

[model]
hidden = 64

[[stages]]
name = "lr"                 # reordered: no range test, lr first
n_trials = 6
[stages.params.lr]
type = "float"
low = 1e-3
high = 1e-1
log = true
[stages.pruner]
kind = "successive_halving"

[[stages]]
name = "batch"
template = "batch_size"     # added from the profile's templates

[[stages]]
name = "mine"               # a new stage of its own
[stages.params.hidden]
type = "categorical"
choices = [32, 64, 128]
[stages.sampler]
kind = "grid"

[[stages]]
name = "final"
epochs = 30
"""
    )
    plan = load_plan(path)
    assert [s.name for s in plan.stages] == ["lr", "batch", "mine", "final"]
    assert plan.profile == "mlp"
    assert plan.defaults["lr"] == 3e-3 and plan.defaults["hidden"] == 64
    assert plan.defaults["weight_decay"] == PROFILES["mlp"].defaults["weight_decay"]
    lr = plan.stage("lr")
    assert lr.n_trials == 4  # `trials` sets every search stage after the stage's own
    assert lr.param("lr") == FloatParam("lr", 1e-3, 1e-1, log=True)
    assert lr.pruner.kind == "successive_halving"
    assert lr.pruner.warmup_fraction == PROFILES["mlp"].templates["lr"].pruner.warmup_fraction
    assert plan.stage("batch").param_names == ("batch_size",)
    assert plan.stage("mine").sampler.kind == "grid"
    assert plan.stage("final").epochs == 30 and plan.stage("final").n_trials == 1


def test_without_stages_a_file_keeps_the_profiles_five_steps() -> None:
    plan = plan_from_toml('profile = "cnn-scratch"\n[defaults]\nbatch_size = 64\n')
    assert [s.name for s in plan.stages] == [s.name for s in default_plan("cnn-scratch").stages]
    assert plan.defaults["batch_size"] == 64 and plan.defaults["optimizer"] == "sgd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "profil = 'mlp'",
            "profil: unknown key; allowed: profile, inherit, budget, trials, defaults",
        ),
        ("profile = 'mpl'", "profile: unknown profile 'mpl'; allowed: ["),
        (
            "[defaults]\nlearning_rate = 0.1",
            "defaults.learning_rate: unknown training hyperparameter; allowed: optimizer, lr, ",
        ),
        ("[model]\nlr = 0.1", "model.lr: a training hyperparameter; put it under [defaults]"),
        (
            "[[stages]]\nname = 'lr'\nn_trial = 3",
            "stages[0] ('lr').n_trial: unknown key; allowed: name, template, kind, n_trials",
        ),
        (
            "[[stages]]\nname = 'lr'\n[stages.pruner]\nkind = 'medain'",
            "stages[0] ('lr').pruner: pruner: unknown kind 'medain'; allowed: ('median'",
        ),
        (
            "[[stages]]\nname = 'lr'\n[stages.pruner]\nwarmup = 0.5",
            "stages[0] ('lr').pruner.warmup: unknown key; allowed: kind, n_startup_trials, "
            "warmup_fraction",
        ),
        (
            "[[stages]]\nname = 'lr'\n[stages.sampler]\nkind = 'cmaes'",
            "sampler: unknown kind 'cmaes'; allowed: ('tpe', 'random', 'grid')",
        ),
        (
            "[[stages]]\nname = 'x'\ntemplate = 'warmupp'",
            "stages[0] ('x').template: unknown stage template 'warmupp'; allowed: "
            "lr_range_test, lr",
        ),
        ("[[stages]]\nname = 'x'", "stages[0] ('x'): not a stage of the profile"),
        (
            "[[stages]]\nname = 'lr'\n[stages.params.lr]\ntype = 'float'\nlow = 1e-2\nhigh = 1e-4",
            "stages[0] ('lr').params.lr: lr: low must be less than high",
        ),
        (
            "[[stages]]\nname = 'lr'\n[stages.params.lr]\ntype = 'float'\nlow = 1e-4\nhihg = 1",
            "params.lr: lr: unknown key(s) ['hihg'] for a float parameter",
        ),
        (
            "[[stages]]\nname = 'lr'\nkind = 'warmup'",
            "stages[0] ('lr').kind: unknown kind "
            "'warmup'; allowed: search, lr_range_test, regularization, final",
        ),
        (
            "[[stages]]\nname = 'lr'\n[stages.range_test]\nnum_iter = 10",
            "stages[0] ('lr').range_test: only a stage of kind 'lr_range_test' has one",
        ),
        (
            "[[stages]]\nname = 'lr_range_test'\n[stages.range_test]\nrule = 'valley'",
            "range_test: unknown rule 'valley'; allowed: ('min_loss', 'steepest')",
        ),
        (
            "[[stages]]\nname = 'lr_range_test'\n[stages.range_test]\nnum_iters = 10",
            "range_test.num_iters: unknown key; allowed: start_lr, end_lr, num_iter",
        ),
        ("[[stages]]\nname = 'lr'\n[[stages]]\nname = 'lr'", "appear twice"),
        ("trials = 0", "trials: must be an integer >= 1, but got 0"),
        ("inherit = false", "stages: a plan with inherit = false must list its [[stages]]"),
        ("stages = 3", "stages: must be a non-empty array of tables"),
        ("profile = ", "not a valid TOML file"),
    ],
)
def test_unknown_keys_and_bad_values_fail_with_one_message(text: str, message: str) -> None:
    with pytest.raises(PlanFileError) as error:
        plan_from_toml(text)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_load_plan_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="Cannot read plan file"):
        load_plan(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nlrr = 1\n")
    with pytest.raises(PlanFileError, match=r"bad\.toml: defaults\.lrr: unknown"):
        load_plan(bad)


def test_training_params_are_the_train_configs_fields() -> None:
    from dataclasses import fields

    from stagetune.objectives import TrainConfig

    trainer = {f.name for f in fields(TrainConfig)} - {"model"}
    assert set(TRAINING_PARAMS) == trainer, (
        "plan files accept TrainConfig's fields under [defaults]: keep "
        "spaces._config.TRAINING_PARAMS equal to them"
    )


def test_a_plan_file_gives_a_budget_and_stage_shares() -> None:
    plan = plan_from_toml(
        'profile = "mlp"\nbudget = 30\n[[stages]]\nname = "lr"\nshare = 2\n'
        '[[stages]]\nname = "weight_decay"\n'
    )
    assert plan.budget == 30
    assert plan.stage_fractions() == pytest.approx(
        {"lr": 2 / 2.275, "weight_decay": 0.275 / 2.275}
    )
    # an inheriting file without budget or trials takes the profile's budget
    assert plan_from_toml('profile = "mlp"').budget == DEFAULT_BUDGET
    assert plan_from_toml('profile = "mlp"\ntrials = 5').budget is None
    # written complete and read back: the same plan, budget and shares included
    assert plan_from_toml(plan_to_toml(plan)) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budget = 10\ntrials = 4", "budget, trials: give one"),
        ("budget = 0", "budget: must be an integer >= 1, but got 0"),
        ('budget = "ten"', "budget: must be an integer >= 1, but got 'ten'"),
        ("budget = 2", "stage 'lr' gets 0.9 trial-equivalents of 2"),
        ('[[stages]]\nname = "lr"\nshare = -1', "stages[0] ('lr'): stage 'lr': share must be > 0"),
        (
            '[[stages]]\nname = "final"\nshare = 0.5',
            "a final stage runs one trial outside the epoch budget",
        ),
    ],
)
def test_bad_budgets_and_shares_fail_with_one_message(text: str, message: str) -> None:
    with pytest.raises(PlanFileError) as error:
        plan_from_toml(text)
    assert message in str(error.value)


def test_a_plan_file_sets_how_a_stage_measures_its_incumbent() -> None:
    plan = plan_from_toml(
        'profile = "mlp"\n[[stages]]\nname = "lr"\n'
        '[[stages]]\nname = "weight_decay"\nincumbent = "reuse"\n'
    )
    assert [s.incumbent for s in plan.stages] == ["retrain", "reuse"]
    assert plan_from_toml(plan_to_toml(plan)) == plan
    # the default stays out of the fingerprint: plans stored before the option resume
    assert "incumbent" not in plan.stages[0].to_dict()
    assert plan.stages[1].to_dict()["incumbent"] == "reuse"
    with pytest.raises(PlanFileError) as error:
        plan_from_toml('[[stages]]\nname = "lr"\nincumbent = "keep"')
    assert "stage 'lr': unknown incumbent 'keep'; allowed: retrain, reuse." in str(error.value)
