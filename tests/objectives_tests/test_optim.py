"""The guide's optimizers and LR schedules: each trajectory checked step by step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from stagetune.objectives import ConfigError, TrainConfig
from stagetune.objectives._optim import (
    MAX_WARMUP_SHARE,
    build_optimizer,
    build_scheduler,
    param_groups,
    steps_per_epoch_only,
    warmup_steps,
)
from stagetune.spaces import PLATEAU_PATIENCE, SCHEDULER_ETA_MIN
from stagetune.spaces import _guide as guide


def trajectory(config: TrainConfig, steps: int) -> list[float]:
    """LR of every optimizer step, then the LR after the last one."""
    optimizer = build_optimizer(nn.Linear(2, 1), config)
    scheduler = build_scheduler(optimizer, config, steps)
    assert scheduler is not None
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_cosine_annealing_goes_from_the_peak_to_eta_min() -> None:
    lrs = trajectory(TrainConfig(lr=0.1, scheduler="cosine", eta_min=1e-6), 100)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx((0.1 + 1e-6) / 2, rel=1e-3)  # half way: the mean
    assert lrs[-1] == pytest.approx(1e-6)
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_cosine_with_warmup_rises_linearly_then_decays_to_zero() -> None:
    lrs = trajectory(TrainConfig(lr=0.1, scheduler="cosine_warmup", warmup_fraction=0.06), 200)
    warmup = int(0.06 * 200)
    assert lrs[:warmup] == pytest.approx([0.1 * (i + 1) / warmup for i in range(warmup)])
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == warmup - 1
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_warmup_in_steps_replaces_the_fraction_and_takes_at_most_10_percent() -> None:
    lrs = trajectory(TrainConfig(lr=1.0, scheduler="cosine_warmup", warmup_steps=8), 200)
    assert lrs[7] == pytest.approx(1.0) and lrs[3] == pytest.approx(0.5)
    long = trajectory(TrainConfig(lr=1.0, scheduler="cosine_warmup", warmup_steps=10_000), 100)
    peak = long.index(max(long))
    assert peak == int(MAX_WARMUP_SHARE * 100) - 1
    assert long[-1] == pytest.approx(0.0, abs=1e-12)


def test_onecycle_peaks_at_max_lr_and_ends_far_below_it() -> None:
    lrs = trajectory(TrainConfig(lr=0.2, optimizer="sgd", scheduler="onecycle"), 100)
    assert max(lrs) == pytest.approx(0.2)
    assert 25 <= lrs.index(max(lrs)) <= 35  # torch's pct_start=0.3
    assert lrs[0] == pytest.approx(0.2 / 25)  # torch's div_factor
    assert lrs[-2] < 0.2 / 1e4


def test_multistep_drops_by_gamma_at_the_recipes_milestones() -> None:
    config = TrainConfig(lr=0.1, scheduler="multistep", milestones=(1 / 3, 2 / 3, 1.0))
    lrs = trajectory(config, 90)
    assert lrs[29] == pytest.approx(0.1) and lrs[30] == pytest.approx(0.01)
    assert lrs[59] == pytest.approx(0.01) and lrs[60] == pytest.approx(0.001)
    assert lrs[89] == pytest.approx(0.001)  # the 90/90 milestone falls after the last step


def test_reduce_on_plateau_is_stepped_per_epoch_and_waits_its_patience() -> None:
    config = TrainConfig(lr=0.1, scheduler="plateau", plateau_patience=2, plateau_factor=0.1)
    optimizer = build_optimizer(nn.Linear(2, 1), config)
    scheduler = build_scheduler(optimizer, config, 100)
    assert steps_per_epoch_only(scheduler)
    lrs = []
    for val_loss in (1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9):
        scheduler.step(val_loss)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert not steps_per_epoch_only(build_scheduler(optimizer, TrainConfig(), 10))


def test_constant_has_no_scheduler() -> None:
    optimizer = build_optimizer(nn.Linear(2, 1), TrainConfig())
    assert build_scheduler(optimizer, TrainConfig(scheduler="constant"), 10) is None


def test_sgd_uses_momentum_09_with_nesterov_and_adam_its_betas() -> None:
    sgd = build_optimizer(nn.Linear(2, 1), TrainConfig(optimizer="sgd", lr=0.1))
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.9, True)
    adamw = build_optimizer(nn.Linear(2, 1), TrainConfig(beta2=0.95))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.95)
    adam = build_optimizer(nn.Linear(2, 1), TrainConfig(optimizer="adam"))
    assert type(adam) is torch.optim.Adam


def test_adafactor_builds_with_decay_groups_and_takes_a_step() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = build_optimizer(model, TrainConfig(optimizer="adafactor", lr=1e-2))
    assert isinstance(optimizer, torch.optim.Adafactor)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]
    before = model[0].weight.detach().clone()
    model(torch.randn(16, 4)).pow(2).mean().backward()
    optimizer.step()
    assert not torch.equal(before, model[0].weight)
    # OneCycleLR needs momentum or betas; Adafactor has neither, so it does not cycle them.
    config = TrainConfig(optimizer="adafactor", scheduler="onecycle")
    assert build_scheduler(optimizer, config, 10) is not None


def test_rmsprop_builds_with_decay_groups_and_takes_a_step() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = build_optimizer(model, TrainConfig(optimizer="rmsprop", lr=1e-3))
    assert type(optimizer) is torch.optim.RMSprop
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]
    assert (optimizer.defaults["alpha"], optimizer.defaults["momentum"]) == (0.99, 0)
    before = model[0].weight.detach().clone()
    model(torch.randn(16, 4)).pow(2).mean().backward()
    optimizer.step()
    assert not torch.equal(before, model[0].weight)


def test_onecycle_cycles_momentum_only_where_the_optimizer_has_it() -> None:
    for optimizer, cycles in (("rmsprop", False), ("sgd", True), ("adamw", True)):
        built = build_optimizer(nn.Linear(2, 1), TrainConfig(optimizer=optimizer))
        build_scheduler(built, TrainConfig(optimizer=optimizer, scheduler="onecycle"), 10)
        group = built.param_groups[0]
        if optimizer == "rmsprop":
            assert group["momentum"] == 0  # not switched on
        assert ("max_momentum" in group) == cycles


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "adafactor", "rmsprop"])
def test_every_optimizer_keeps_biases_and_norm_weights_out_of_weight_decay(optimizer: str) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    built = build_optimizer(model, TrainConfig(optimizer=optimizer, weight_decay=0.05))
    decay, no_decay = built.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["0.weight", "2.weight"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == [
        "0.bias",
        "1.bias",
        "1.weight",
        "2.bias",
    ]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    assert len(param_groups(model, 0.05)) == 2


def test_new_settings_are_validated_by_name() -> None:
    with pytest.raises(ConfigError, match="scheduler must be one of"):
        TrainConfig(scheduler="step")
    with pytest.raises(ConfigError, match="milestones are fractions of the run"):
        TrainConfig(milestones=(30, 60, 90))
    with pytest.raises(ConfigError, match="milestones must increase"):
        TrainConfig(milestones=(0.6, 0.3))
    with pytest.raises(ConfigError, match="warmup_steps must be an integer >= 0"):
        TrainConfig(warmup_steps=-1)
    with pytest.raises(ConfigError, match="beta2 must be in"):
        TrainConfig(beta2=1.5)
    assert TrainConfig(milestones=[0.5, 1.0]).milestones == (0.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_micro_batch must be an integer >= 1"):
        TrainConfig(max_micro_batch=0)


def test_a_batch_larger_than_max_micro_batch_accumulates() -> None:
    config = TrainConfig(batch_size=256, max_micro_batch=64)
    assert (config.accumulation_steps, config.micro_batch_size) == (4, 64)
    assert TrainConfig(batch_size=32, max_micro_batch=64).accumulation_steps == 1
    # an explicit, larger accumulation stays
    assert (
        TrainConfig(batch_size=256, max_micro_batch=64, accumulation_steps=8).accumulation_steps
        == 8
    )
    assert math.isclose(TrainConfig().milestones[0], 1 / 3)


def test_schedule_defaults_are_read_from_the_guides_scheduler_table() -> None:
    """'eta_min=1e-6' and 'patience=5-10' of "Scheduler Choice", not copies of them."""
    assert (SCHEDULER_ETA_MIN, PLATEAU_PATIENCE) == (1e-6, (5, 10))
    config = TrainConfig()
    assert config.eta_min == SCHEDULER_ETA_MIN
    assert config.plateau_patience == PLATEAU_PATIENCE[0]  # the lower end: short trials


def test_the_warmup_cap_is_what_the_docs_say() -> None:
    """Warmup steps are cut to MAX_WARMUP_SHARE of the run; the decision says so."""
    share = f"{MAX_WARMUP_SHARE:.0%}"
    assert share == "10%"
    assert share in guide.WARMUP_DECISION and "half" not in guide.WARMUP_DECISION
    config = TrainConfig(scheduler="cosine_warmup", warmup_steps=2_000)
    assert warmup_steps(config, 1_000) == 100
