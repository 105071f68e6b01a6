"""Each profile's defaults and stages against the guide's tables and recipes."""

from __future__ import annotations

import pytest

from stagetune.spaces import PROFILES, FloatParam, core_plan, default_plan, get_profile
from stagetune.spaces import _guide as guide

FAMILIES = (
    "mlp",
    "cnn-scratch",
    "rnn",
    "transformer-scratch",
    "transformer-finetune",
    "transformer-pretrain",
    "vit-scratch",
)
RECIPE_PROFILES = ("resnet50-imagenet", "bert-finetune", "vit-imagenet", "gpt-pretrain")


def test_the_profiles_and_recipes_exist() -> None:
    assert [n for n, p in PROFILES.items() if p.kind == "profile"] == list(FAMILIES)
    assert [n for n, p in PROFILES.items() if p.kind == "recipe"] == list(RECIPE_PROFILES)


@pytest.mark.parametrize("name", [*FAMILIES, *RECIPE_PROFILES])
def test_every_plan_is_the_five_steps_with_defaults_inside_their_ranges(name: str) -> None:
    plan = default_plan(name)
    assert [s.name for s in plan.stages] == [
        *guide.STRATEGY[1][1].split(", "),
        "weight_decay",
        "regularization",
        "final",
    ]
    for stage in plan.stages:
        for param in stage.params:
            assert param.contains(plan.defaults[param.name]), (name, param.name)
            assert param.source, (name, param.name)
    # The range test clips to the same range the LR stage searches.
    assert plan.stage("lr_range_test").params == plan.stage("lr").params
    from stagetune.objectives import TrainConfig

    TrainConfig.from_params(plan.defaults)  # every default is one the loop accepts


def test_mlp_profile_keeps_the_step_one_defaults() -> None:
    defaults = get_profile("mlp").defaults
    step1 = guide.STEP_ONE["adamw"]
    assert (defaults["optimizer"], defaults["lr"], defaults["weight_decay"]) == (
        "adamw",
        1e-3,
        step1.weight_decay,
    )
    assert defaults["grad_clip"] is None
    assert defaults["dropout"] == guide.DROPOUT["fc"].low


def test_cnn_profile_is_sgd_nesterov_cosine_without_clip_or_warmup() -> None:
    profile = get_profile("cnn-scratch")
    d = profile.defaults
    assert (d["optimizer"], d["lr"], d["momentum"], d["nesterov"]) == ("sgd", 0.1, 0.9, True)
    assert (d["scheduler"], d["warmup_fraction"], d["grad_clip"]) == ("cosine", 0.0, None)
    assert d["weight_decay"] == guide.WEIGHT_DECAY["sgd_cnn"].low == 1e-4
    assert guide.BATCH_SIZE["single_gpu_16gb"].low <= d["batch_size"]
    assert d["batch_size"] <= guide.BATCH_SIZE["single_gpu_16gb"].high  # type: ignore[operator]
    lr = profile.templates["lr"].param("lr")
    assert (lr.low, lr.high) == (1e-3, 1.0)  # type: ignore[union-attr]  # the SGD decision
    dropout = profile.templates["regularization"].param("dropout")
    assert (dropout.low, dropout.high) == (0.0, 0.2)  # type: ignore[union-attr]


def test_rnn_profile_clips_with_the_rnn_row_and_keeps_step_one() -> None:
    profile = get_profile("rnn")
    d = profile.defaults
    step1 = guide.STEP_ONE["adamw"]
    clip = guide.GRAD_CLIP["rnn"]
    assert (clip.model_type, clip.low, clip.high) == ("RNNs / LSTMs", 1.0, 5.0)
    # Step 1's optimizer (Optimizer Choice has no recurrent row) with its LR row.
    assert (d["optimizer"], d["lr"], d["weight_decay"]) == ("adamw", 1e-3, step1.weight_decay)
    lr = profile.templates["lr"].param("lr")
    row = guide.LEARNING_RATE["adamw_scratch"]
    assert (lr.low, lr.high) == (row.search_low, row.search_high)  # type: ignore[union-attr]
    # Clipping on, fixed at the row's lower end; no warmup (transformers only).
    assert d["grad_clip"] == clip.low == 1.0
    assert (d["scheduler"], d["warmup_fraction"]) == ("cosine", 0.0)
    assert all("grad_clip" not in s.param_names for s in profile.plan().stages)
    # A plan that adds the grad_clip stage searches the row's two ends, never "off".
    searched = profile.templates["grad_clip"].param("grad_clip")
    assert searched.choices == (clip.low, clip.high)  # type: ignore[union-attr]
    assert profile.templates["grad_clip"].n_trials == 2
    dropout = profile.templates["regularization"].param("dropout")
    assert (dropout.low, dropout.high) == (0.0, guide.DROPOUT_SEARCH_HIGH["fc"])  # type: ignore[union-attr]
    assert d["dropout"] == guide.DROPOUT["fc"].low


def test_every_profile_says_which_model_family_it_suits() -> None:
    for name, profile in PROFILES.items():
        assert profile.suits, name
    assert "RNN" in get_profile("rnn").suits and "LSTM" in get_profile("rnn").suits
    assert "CNN" in get_profile("cnn-scratch").suits
    assert "tabular" in get_profile("mlp").suits


def test_transformer_profiles() -> None:
    finetune = get_profile("transformer-finetune").defaults
    assert (finetune["lr"], finetune["weight_decay"]) == (2e-5, 0.01)
    assert (finetune["scheduler"], finetune["warmup_fraction"]) == ("cosine_warmup", 0.06)
    assert (finetune["grad_clip"], finetune["dropout"]) == (1.0, 0.1)
    pretrain = get_profile("transformer-pretrain")
    d = pretrain.defaults
    assert (d["lr"], d["weight_decay"], d["beta2"], d["warmup_steps"]) == (3e-4, 0.1, 0.95, 2000)
    wd = pretrain.templates["weight_decay"].param("weight_decay")
    assert (wd.low, wd.high) == (1e-5, 0.1)  # type: ignore[union-attr]
    lr = pretrain.templates["lr"].param("lr")
    assert (lr.low, lr.high) == (1e-4, 1e-3)  # type: ignore[union-attr]


def test_vit_profile_searches_dropout_and_drop_path() -> None:
    profile = get_profile("vit-scratch")
    d = profile.defaults
    assert (d["weight_decay"], d["drop_path"], d["warmup_steps"]) == (0.1, 0.1, 10_000)
    assert profile.templates["regularization"].param_names == ("dropout", "drop_path")
    drop_path = profile.templates["regularization"].param("drop_path")
    assert (drop_path.low, drop_path.high) == (0.0, 0.3)  # type: ignore[union-attr]
    wd = profile.templates["weight_decay"].param("weight_decay")
    assert (wd.low, wd.high) == (1e-5, 0.3)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("recipe", "family"),
    [
        ("resnet50-imagenet", "cnn-scratch"),
        ("bert-finetune", "transformer-finetune"),
        ("vit-imagenet", "vit-scratch"),
        ("gpt-pretrain", "transformer-pretrain"),
    ],
)
def test_recipes_set_their_values_and_final_epochs(recipe: str, family: str) -> None:
    profile = get_profile(recipe)
    assert profile.based_on == family
    for key, value in guide.RECIPES[recipe].values.items():
        assert profile.defaults[key] == value
    assert profile.templates["final"].epochs == guide.RECIPES[recipe].epochs
    base = get_profile(family).templates
    assert profile.templates["lr"] == base["lr"]


def test_stage_templates_for_plan_files() -> None:
    templates = get_profile("mlp").templates
    assert set(templates) >= {"batch_size", "warmup", "scheduler", "grad_clip"}
    batch = templates["batch_size"].param("batch_size")
    assert batch.choices == (32, 64, 128, 256)  # type: ignore[union-attr]
    clip = templates["grad_clip"].param("grad_clip")
    assert clip.choices == (None, 1.0, 5.0)  # type: ignore[union-attr]


def test_core_plan_has_the_three_search_stages() -> None:
    plan = core_plan("vit-scratch", n_trials=2)
    assert [(s.name, s.n_trials) for s in plan.stages] == [
        ("lr", 2),
        ("weight_decay", 2),
        ("regularization", 2),
    ]
    assert isinstance(plan.stage("lr").param("lr"), FloatParam)
