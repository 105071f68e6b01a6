"""Each class of the guide's "Signs you have the wrong LR", and over/underfitting, on
synthetic curves."""

from __future__ import annotations

import math

import pytest

from stagetune.objectives import diagnose_fit, diagnose_lr
from stagetune.objectives._diagnosis import LR_LABELS, summarize_lr_diagnoses

HEALTHY = [2.3 * math.exp(-0.25 * i) for i in range(20)]  # steady fall on a log scale


@pytest.mark.parametrize(
    ("curve", "initial", "diverged", "label", "fix"),
    [
        ([2.3, math.nan], 2.3, False, "explodes", "Divide by 10"),
        ([2.0, 1.5], 2.3, True, "explodes", "Divide by 10"),
        ([19.4, 2.32, 2.31, 2.32, 2.31], 2.3, False, "explodes", "Divide by 10"),
        ([2.30, 2.29, 2.29, 2.28, 2.27, 2.27], 2.3, False, "barely_moves", "Multiply by 10"),
        (
            [1.2, 0.4, 0.3, 0.31, 0.3, 0.3, 0.31, 0.3, 0.3, 0.31],
            2.3,
            False,
            "plateaus_early",
            "Use a schedule",
        ),
        (
            [1.5, 1.0, 1.1, 0.8, 0.9, 0.6, 0.7, 0.45, 0.5, 0.33, 0.36, 0.25],
            2.3,
            False,
            "oscillates",
            "Mild reduction or add schedule",
        ),
        (HEALTHY, None, False, "healthy", "Keep the LR"),
    ],
)
def test_each_lr_class_and_the_guides_fix(
    curve: list[float], initial: float | None, diverged: bool, label: str, fix: str
) -> None:
    diagnosis = diagnose_lr(curve, initial_loss=initial, diverged=diverged)
    assert diagnosis.label == label, diagnosis.reason
    assert diagnosis.fix == fix
    assert diagnosis.reason
    attrs = diagnosis.to_attrs()
    assert attrs["lr_diagnosis"] == label and attrs["lr_diagnosis_fix"] == fix


def test_short_curves_are_judged_only_for_exploding_or_not_moving() -> None:
    assert diagnose_lr([1.0, 0.9, 0.9], initial_loss=2.3).label == "healthy"
    assert diagnose_lr([2.3, 2.29], initial_loss=2.3).label == "barely_moves"
    assert diagnose_lr([], initial_loss=2.3).label == "healthy"


def test_without_an_initial_loss_the_first_epoch_is_the_reference() -> None:
    assert diagnose_lr([2.0, 2.5, 3.0, 3.0]).label == "explodes"
    assert diagnose_lr([2.0, 1.99, 1.98, 1.97]).label == "barely_moves"


@pytest.mark.parametrize(
    ("train", "val", "label", "direction"),
    [
        ([1.0, 0.5, 0.2, 0.1], [1.0, 0.6, 0.5, 0.6], "overfitting", +1),  # val rose
        ([1.0, 0.5, 0.1, 0.05], [1.0, 0.5, 0.3, 0.3], "overfitting", +1),  # val 6x train
        ([2.0, 1.5, 1.2, 1.0], [1.9, 1.4, 1.1, 0.95], "underfitting", -1),  # no gap
        ([1.0, 0.6, 0.4, 0.3], [1.0, 0.7, 0.5, 0.34], "good_fit", 0),
        ([], [], "good_fit", 0),
    ],
)
def test_fit_classes_and_the_direction_of_step_4(
    train: list[float], val: list[float], label: str, direction: int
) -> None:
    diagnosis = diagnose_fit(train, val)
    assert (diagnosis.label, diagnosis.direction) == (label, direction)
    assert diagnosis.to_dict()["label"] == label


def test_summary_counts_every_class() -> None:
    counts = summarize_lr_diagnoses(["healthy", "explodes", "healthy"])
    assert list(counts) == list(LR_LABELS)
    assert counts["healthy"] == 2 and counts["explodes"] == 1 and counts["oscillates"] == 0
