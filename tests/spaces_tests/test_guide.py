"""The guide's tables, checked against the numbers printed in the guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stagetune.spaces import _guide as guide


def test_priority_order_has_the_guides_ten_items_in_order() -> None:
    assert guide.PRIORITY_ORDER == (
        "learning_rate",
        "batch_size",
        "weight_decay",
        "warmup_steps",
        "scheduler",
        "grad_clip",
        "dropout",
        "epochs",
        "optimizer",
        "architecture_depth",
    )


def test_learning_rate_table() -> None:
    rows = {
        key: (r.typical_low, r.typical_high, r.common_defaults)
        for key, r in guide.LEARNING_RATE.items()
    }
    assert rows == {
        "sgd": (0.001, 0.1, (0.01, 0.1)),
        "adam": (1e-4, 1e-3, (1e-3,)),
        "adamw_finetune": (1e-5, 5e-4, (2e-5, 5e-5)),
        "adamw_scratch": (1e-4, 3e-4, (1e-3,)),
    }
    for row in guide.LEARNING_RATE.values():
        assert row.source == "Learning Rate / Starting points by optimizer"
        assert row.search_low <= row.default <= row.search_high


def test_sgd_decision_searches_one_10x_fix_above_the_guides_range() -> None:
    row = guide.LEARNING_RATE["sgd"]
    assert row.default == row.typical_high == 0.1  # the guide's default ends its range
    assert (row.search_low, row.search_high) == (row.typical_low, 1.0)
    assert row.search_high == pytest.approx(row.typical_high * 10)
    assert "Multiply by 10" in row.decision
    assert "benchmarks/sgd_range.py" in row.decision


def test_adamw_from_scratch_decision_keeps_default_inside_and_widens_by_two_10x_fixes() -> None:
    row = guide.LEARNING_RATE["adamw_scratch"]
    # The guide's range excludes its own default; the decision widens it.
    assert not row.typical_low <= row.default <= row.typical_high
    assert (row.search_low, row.search_high, row.default) == (1e-4, 3e-2, 1e-3)
    assert row.search_high == pytest.approx(row.typical_high * 10 * 10)
    assert "Multiply by 10" in row.decision
    assert "benchmarks/lr_range_test.py" in row.decision


def test_weight_decay_table_and_grid() -> None:
    assert {k: (r.low, r.high) for k, r in guide.WEIGHT_DECAY.items()} == {
        "sgd_cnn": (1e-4, 1e-4),
        "adamw_transformer_finetune": (0.01, 0.01),
        "adamw_transformer_pretrain": (0.1, 0.1),
        "adamw_vit": (0.05, 0.3),
    }
    assert guide.WEIGHT_DECAY_GRID == (1e-5, 1e-4, 1e-2)


def test_dropout_table() -> None:
    assert {k: (r.low, r.high) for k, r in guide.DROPOUT.items()} == {
        "fc": (0.3, 0.5),
        "transformer": (0.1, 0.1),
        "cnn": (0.1, 0.2),
        "drop_path": (0.1, 0.3),
    }


def test_step_one_defaults() -> None:
    adamw = guide.STEP_ONE["adamw"]
    assert (adamw.optimizer, adamw.lr, adamw.weight_decay, adamw.grad_clip) == (
        "adamw",
        1e-3,
        1e-4,
        None,
    )
    sgd = guide.STEP_ONE["sgd_cnn"]
    assert (sgd.optimizer, sgd.lr, sgd.grad_clip) == ("sgd", 0.1, None)
    assert guide.STEP_ONE["transformer"].grad_clip == 1.0


# --- every other table, with the guide's numbers -----------------------------------------


def test_batch_size_table_and_scaling_rule() -> None:
    assert {k: (r.low, r.high) for k, r in guide.BATCH_SIZE.items()} == {
        "single_gpu_16gb": (32, 256),
        "single_gpu_40gb": (64, 512),
        "multi_gpu": (None, None),
    }
    assert "gradient accumulation" in guide.BATCH_SIZE["multi_gpu"].note
    rule = guide.LINEAR_SCALING
    assert (rule.example_batch, rule.example_lr) == (32, 0.01)
    assert (rule.example_scaled_batch, rule.example_scaled_lr) == (128, 0.04)
    assert (rule.limit_low, rule.limit_high) == (4096, 8192)
    assert guide.SMALL_BATCH_REGULARIZES == 16


def test_weight_decay_stage_range_holds_the_grid_and_the_profiles_row() -> None:
    assert guide.weight_decay_range(None) == (1e-5, 1e-2)
    assert guide.weight_decay_range(guide.WEIGHT_DECAY["sgd_cnn"]) == (1e-5, 1e-2)
    assert guide.weight_decay_range(guide.WEIGHT_DECAY["adamw_transformer_pretrain"]) == (
        1e-5,
        0.1,
    )
    assert guide.weight_decay_range(guide.WEIGHT_DECAY["adamw_vit"]) == (1e-5, 0.3)
    for row in guide.WEIGHT_DECAY.values():
        low, high = guide.weight_decay_range(row)
        assert low <= min(guide.WEIGHT_DECAY_GRID) and max(guide.WEIGHT_DECAY_GRID) <= high
        assert low <= row.low <= row.high <= high


def test_warmup_table() -> None:
    assert {k: (r.fraction, r.steps) for k, r in guide.WARMUP.items()} == {
        "bert_finetune": ((0.06, 0.10), None),
        "bert_pretrain": (None, (10_000, 10_000)),
        "gpt_pretrain": (None, (2_000, 4_000)),
        "vit_scratch": (None, (10_000, 10_000)),
        "small_model": (None, (500, 1_000)),
    }
    assert guide.CNN_WARMUP == 0.0


def test_scheduler_table_and_decision_shortcut() -> None:
    assert {k: (r.scheduler, r.key_setting) for k, r in guide.SCHEDULERS.items()} == {
        "cosine": ("CosineAnnealingLR", "T_max=num_epochs, eta_min=1e-6"),
        "onecycle": ("OneCycleLR", "max_lr from LR range test"),
        "cosine_warmup": ("Cosine + Warmup", "num_warmup_steps=6-10%"),
        "plateau": ("ReduceLROnPlateau", "patience=5-10"),
        "multistep": ("StepLR / MultiStepLR", "Match paper milestones"),
    }
    assert all(k == r.name for k, r in guide.SCHEDULERS.items())
    assert guide.SCHEDULER_SHORTCUT == {
        "transformer": "cosine_warmup",
        "cnn_fixed_epochs": "cosine",
        "cnn_fast_convergence": "onecycle",
        "finetune_unknown_duration": "plateau",
    }
    assert guide.SCHEDULER_ETA_MIN == 1e-6
    assert guide.PLATEAU_PATIENCE == (5, 10)


def test_grad_clip_table() -> None:
    assert {k: (r.low, r.high) for k, r in guide.GRAD_CLIP.items()} == {
        "transformer": (1.0, 1.0),
        "rnn": (1.0, 5.0),
        "cnn": (None, None),
        "diffusion": (1.0, 1.0),
    }


def test_dropout_search_ranges_reach_zero_and_the_rows_upper_end() -> None:
    assert guide.DROPOUT_SEARCH_HIGH == {
        "fc": 0.5,
        "transformer": 0.2,
        "cnn": 0.2,
        "drop_path": 0.3,
    }
    for key, high in guide.DROPOUT_SEARCH_HIGH.items():
        assert high >= guide.DROPOUT[key].high


def test_epochs_table_and_early_stopping() -> None:
    assert {k: (r.low, r.high) for k, r in guide.EPOCHS.items()} == {
        "imagenet_resnet": (90, 300),
        "cifar_scratch": (200, 200),
        "bert_finetune": (3, 5),
        "vit_finetune": (10, 30),
        "small_finetune": (5, 20),
    }
    assert guide.EARLY_STOPPING_PATIENCE == (10, 20)
    # Decision: early stopping waits longer than ReduceLROnPlateau.
    assert guide.EARLY_STOPPING_PATIENCE[0] > guide.PLATEAU_PATIENCE[0]


def test_optimizer_table() -> None:
    assert {k: r.optimizers for k, r in guide.OPTIMIZER_BY_MODEL.items()} == {
        "cnn_scratch": ("sgd",),
        "transformer": ("adamw",),
        "finetune": ("adamw",),
        "rl": ("adam", "rmsprop"),
        "very_large": ("adafactor", "lion"),
    }
    from stagetune.objectives._config import OPTIMIZERS

    for row in guide.OPTIMIZER_BY_MODEL.values():
        assert set(row.available) <= set(OPTIMIZERS) & set(row.optimizers)
    assert (guide.SGD_MOMENTUM, guide.SGD_NESTEROV) == (0.9, True)
    adafactor = guide.ADAFACTOR_LEARNING_RATE
    assert (adafactor.search_low, adafactor.default, adafactor.search_high) == (1e-3, 1e-2, 1e-1)
    # Both optimizers the guide names for reinforcement learning train.
    assert guide.OPTIMIZER_BY_MODEL["rl"].available == ("adam", "rmsprop")


def test_rmsprop_takes_adams_lr_row() -> None:
    rmsprop, adam = guide.RMSPROP_LEARNING_RATE, guide.LEARNING_RATE["adam"]
    assert (rmsprop.search_low, rmsprop.search_high, rmsprop.default) == (1e-4, 1e-3, 1e-3)
    assert (rmsprop.typical_low, rmsprop.typical_high) == (adam.typical_low, adam.typical_high)
    assert rmsprop.default == adam.default
    assert "Reinforcement learning" in rmsprop.source
    from stagetune.objectives import TrainConfig

    TrainConfig(optimizer="rmsprop", lr=rmsprop.default)  # the loop accepts it


def test_lr_symptoms_table() -> None:
    assert {k: (r.symptom, r.diagnosis, r.fix) for k, r in guide.LR_SYMPTOMS.items()} == {
        "explodes": ("Loss explodes immediately", "LR too high", "Divide by 10"),
        "barely_moves": ("Loss barely moves", "LR too low", "Multiply by 10"),
        "plateaus_early": (
            "Loss decreases then plateaus early",
            "LR too high (later)",
            "Use a schedule",
        ),
        "oscillates": (
            "Loss oscillates but trends down",
            "Slightly high",
            "Mild reduction or add schedule",
        ),
    }


def test_pretraining_lr_decision_centres_the_gpt_recipe() -> None:
    row = guide.PRETRAIN_LEARNING_RATE
    assert (row.search_low, row.search_high, row.default) == (1e-4, 1e-3, 3e-4)
    assert row.default == guide.RECIPES["gpt-pretrain"].values["lr"]
    centre = (row.search_low * row.search_high) ** 0.5
    assert abs(centre - row.default) / row.default < 0.06


def test_recipes() -> None:
    resnet = guide.RECIPES["resnet50-imagenet"]
    assert resnet.values == {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "batch_size": 256,
        "scheduler": "multistep",
        "milestones": [30 / 90, 60 / 90, 1.0],
        "gamma": 0.1,
    }
    assert resnet.epochs == 90
    bert = guide.RECIPES["bert-finetune"].values
    assert (bert["lr"], bert["weight_decay"], bert["warmup_fraction"]) == (2e-5, 0.01, 0.06)
    assert (bert["batch_size"], bert["grad_clip"], bert["scheduler"]) == (32, 1.0, "cosine_warmup")
    assert guide.RECIPES["bert-finetune"].epochs == 5  # 3-5, the high end with early stopping
    vit = guide.RECIPES["vit-imagenet"].values
    assert (vit["lr"], vit["weight_decay"], vit["warmup_steps"], vit["batch_size"]) == (
        1e-3,
        0.1,
        10_000,
        1024,
    )
    assert (vit["dropout"], vit["drop_path"], vit["grad_clip"]) == (0.1, 0.1, 1.0)
    assert guide.RECIPES["vit-imagenet"].epochs == 300
    gpt = guide.RECIPES["gpt-pretrain"].values
    assert (gpt["lr"], gpt["weight_decay"], gpt["beta1"], gpt["beta2"]) == (3e-4, 0.1, 0.9, 0.95)
    assert (gpt["warmup_steps"], gpt["grad_clip"], gpt["batch_size"]) == (2_000, 1.0, 512)
    assert guide.RECIPES["gpt-pretrain"].epochs is None


def test_strategy_steps_name_the_five_stages() -> None:
    stages = [name for _, names in guide.STRATEGY for name in names.split(", ")]
    assert stages == [
        "(the plan's defaults)",
        "lr_range_test",
        "lr",
        "weight_decay",
        "regularization",
        "final",
    ]


# --- the same numbers, read from the guide itself ------------------------------------------

#: The team's guide, where the shared folder lies beside the repository ...
SHARED_GUIDE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "guide"
    / "hyperparameter-tuning-guide.md"
)
#: ... and the copy the repository carries, so that a clean clone checks the tables too.
GUIDE_COPY = (
    Path(__file__).resolve().parents[2] / "docs" / "guide" / "hyperparameter-tuning-guide.md"
)


@pytest.fixture(scope="module")
def guide_text() -> str:
    return (SHARED_GUIDE if SHARED_GUIDE.exists() else GUIDE_COPY).read_text(encoding="utf-8")


def test_the_repositorys_copy_of_the_guide_is_the_shared_one() -> None:
    if not SHARED_GUIDE.exists():
        pytest.skip(f"no shared guide at {SHARED_GUIDE} to compare the copy with")
    assert GUIDE_COPY.read_text(encoding="utf-8") == SHARED_GUIDE.read_text(encoding="utf-8"), (
        f"the guide changed: copy {SHARED_GUIDE} to {GUIDE_COPY} and update spaces/ to match"
    )


def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after the line containing ``heading``."""
    lines = text[text.index(heading) :].splitlines()
    rows = []
    for line in lines[1:]:
        if line.startswith("|"):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def numbers(cell: str) -> list[float]:
    percent = "%" in cell
    values = []
    for match in re.finditer(r"\d[\d,]*(?:\.\d+)?(?:e-?\d+)?", cell):
        value = float(match.group(0).replace(",", ""))
        values.append(value / 100 if percent else value)
    return values


def test_lr_table_matches_the_guide(guide_text: str) -> None:
    rows = table_after(guide_text, "**Starting points by optimizer:**")
    ours = list(guide.LEARNING_RATE.values())
    assert [r[0] for r in rows] == [row.optimizer for row in ours]
    for cells, row in zip(rows, ours, strict=True):
        assert numbers(cells[1]) == [row.typical_low, row.typical_high]
        defaults = numbers(cells[2])
        assert tuple(defaults) == row.common_defaults or defaults == [2e-5, 5e-5]


def test_batch_weight_decay_warmup_clip_dropout_epochs_tables_match_the_guide(
    guide_text: str,
) -> None:
    batch = table_after(guide_text, "**Practical ranges:**")
    assert [numbers(r[1]) for r in batch] == [
        [r.low, r.high] if r.low is not None else [] for r in guide.BATCH_SIZE.values()
    ]
    wd = table_after(guide_text, "**Quick reference:**")
    assert [r[0] for r in wd] == [r.setting for r in guide.WEIGHT_DECAY.values()]
    assert [sorted(set(numbers(r[1]))) for r in wd] == [
        sorted({r.low, r.high}) for r in guide.WEIGHT_DECAY.values()
    ]
    warmup = table_after(guide_text, "**How much warmup:**")
    assert [r[0] for r in warmup] == [r.task for r in guide.WARMUP.values()]
    for cells, row in zip(warmup, guide.WARMUP.values(), strict=True):
        expected = row.fraction if row.fraction else row.steps
        assert expected is not None
        assert sorted(set(numbers(cells[1]))) == sorted(set(expected))
    clip = table_after(guide_text, "**Standard values:**")
    assert [numbers(r[1]) for r in clip] == [
        sorted({r.low, r.high}) if r.low is not None else [] for r in guide.GRAD_CLIP.values()
    ]
    dropout = table_after(guide_text, "Quick reference for tuning:")
    assert [sorted(set(numbers(r[1]))) for r in dropout] == [
        sorted({r.low, r.high}) for r in guide.DROPOUT.values()
    ]
    epochs = table_after(guide_text, "**Common reference points:**")
    assert [r[0] for r in epochs] == [r.task for r in guide.EPOCHS.values()]
    assert [sorted(set(numbers(r[1]))) for r in epochs] == [
        sorted({r.low, r.high}) for r in guide.EPOCHS.values()
    ]


def test_symptoms_schedulers_and_optimizers_match_the_guide(guide_text: str) -> None:
    symptoms = table_after(guide_text, "**Signs you have the wrong LR:**")
    assert [tuple(r) for r in symptoms] == [
        (r.symptom, r.diagnosis, r.fix) for r in guide.LR_SYMPTOMS.values()
    ]
    schedulers = table_after(guide_text, "## Scheduler Choice")
    assert [r[0] for r in schedulers] == [r.scheduler for r in guide.SCHEDULERS.values()]
    assert [r[2].replace("–", "-").replace("`", "") for r in schedulers] == [
        r.key_setting for r in guide.SCHEDULERS.values()
    ]
    optimizers = table_after(guide_text, "## Optimizer Choice")
    assert [r[0] for r in optimizers] == [r.model for r in guide.OPTIMIZER_BY_MODEL.values()]


def test_priority_order_grid_and_recipes_match_the_guide(guide_text: str) -> None:
    block = guide_text[guide_text.index("1. Learning Rate") :].split("```")[0]
    assert len(re.findall(r"^\s*\d+\. ", block, flags=re.MULTILINE)) == len(guide.PRIORITY_ORDER)
    assert "`[1e-5, 1e-4, 1e-2]`" in guide_text
    assert [float(v) for v in ["1e-5", "1e-4", "1e-2"]] == list(guide.WEIGHT_DECAY_GRID)
    for recipe in guide.RECIPES.values():
        assert f"**{recipe.title}:**" in guide_text
        assert recipe.text in guide_text
