from __future__ import annotations

import pytest
import torch
from torch import nn

from objectives import ConfigError, NonFiniteLossError, TrainConfig, get_task, train
from objectives._optim import build_scheduler, param_groups
from objectives._tasks import load_splits

CPU = torch.device("cpu")


def test_digits_split_is_fixed_seeded_and_disjoint() -> None:
    splits = load_splits(get_task("digits-mlp"))
    sizes = [len(part[0]) for part in (splits.train, splits.val, splits.test)]
    assert sizes == [1078, 359, 360]
    again = get_task("digits-mlp").load()
    assert torch.equal(again.val[0], splits.val[0])
    train_rows = {tuple(row.tolist()) for row in splits.train[0]}
    assert not any(tuple(row.tolist()) in train_rows for row in splits.test[0][:50])


def test_digits_mlp_learns() -> None:
    task = get_task("digits-mlp")
    result = train(task, load_splits(task), TrainConfig(lr=3e-3), epochs=5, device=CPU, seed=0)
    losses = [h.train_loss for h in result.history]
    assert losses[-1] < losses[0] / 2
    assert result.final.val_metric > 0.85  # chance is 0.1


def test_same_seed_same_result() -> None:
    task = get_task("digits-mlp")
    runs = [
        train(task, load_splits(task), TrainConfig(), epochs=2, device=CPU, seed=7)
        for _ in range(2)
    ]
    assert runs[0].final == runs[1].final


def test_nan_loss_raises() -> None:
    task = get_task("digits-mlp")
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        train(task, load_splits(task), TrainConfig(lr=1e12), epochs=3, device=CPU, seed=0)


def test_no_decay_group_holds_biases_and_norm_weights() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["0.weight", "3.weight"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == [
        "0.bias",
        "1.bias",
        "1.weight",
        "2.bias",
        "2.weight",
        "3.bias",
    ]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_adamw_decays_weights_but_not_biases() -> None:
    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    config = TrainConfig(optimizer="adamw", lr=0.1, weight_decay=0.5)
    from objectives._optim import build_optimizer

    optimizer = build_optimizer(model, config)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert model.weight[0, 0].item() == pytest.approx(1.0 - 0.1 * 0.5)
    assert model.bias.item() == pytest.approx(1.0)


def test_cosine_schedule_ends_at_eta_min_and_warmup_rises_linearly() -> None:
    def trajectory(config: TrainConfig, steps: int) -> list[float]:
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=config.lr)
        scheduler = build_scheduler(optimizer, config, steps)
        assert scheduler is not None
        lrs = []
        for _ in range(steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        return lrs

    cosine = trajectory(TrainConfig(lr=0.1, scheduler="cosine"), 100)
    assert cosine[0] == pytest.approx(0.1)
    assert cosine[-1] == pytest.approx(1e-6)
    warm = trajectory(TrainConfig(lr=0.1, scheduler="cosine_warmup", warmup_fraction=0.1), 100)
    assert warm[:10] == pytest.approx([0.01 * (i + 1) for i in range(10)])
    assert max(warm) == pytest.approx(0.1)
    assert warm[-1] == pytest.approx(0.0, abs=1e-9)


def test_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ConfigError, match="lr must be a positive number, but got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        TrainConfig(optimizer="lion")
    config = TrainConfig.from_params({"lr": 0.01, "hidden": 32, "grad_clip": 0.0})
    assert config.grad_clip is None
    assert config.model_params == {"hidden": 32, "dropout": 0.0}
