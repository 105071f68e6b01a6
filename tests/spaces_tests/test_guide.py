"""The guide's tables, checked against the numbers printed in the guide."""

from __future__ import annotations

from spaces import _guide as guide


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


def test_adamw_from_scratch_decision_keeps_default_inside_and_widens_by_10x() -> None:
    row = guide.LEARNING_RATE["adamw_scratch"]
    # The guide's range excludes its own default; the decision widens it.
    assert not row.typical_low <= row.default <= row.typical_high
    assert (row.search_low, row.search_high, row.default) == (1e-4, 1e-2, 1e-3)
    assert "Multiply by 10" in row.decision


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
