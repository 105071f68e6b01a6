from __future__ import annotations

import pytest
import torch
from torch import nn

from stagetune.objectives import (
    ConfigError,
    NonFiniteLossError,
    Splits,
    Task,
    TrainConfig,
    get_task,
    load_splits,
    train,
)
from stagetune.objectives._optim import param_groups
from stagetune.objectives._train import loader_workers
from tests.objectives_tests.test_optim import trajectory

CPU = torch.device("cpu")


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
    from stagetune.objectives._optim import build_optimizer

    optimizer = build_optimizer(model, config)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert model.weight[0, 0].item() == pytest.approx(1.0 - 0.1 * 0.5)
    assert model.bias.item() == pytest.approx(1.0)


def test_cosine_schedule_ends_at_eta_min_and_warmup_rises_linearly() -> None:
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


# --- gradient accumulation ------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "accumulation_steps"), [(64, 4), (64, 3), (50, 7)])
def test_accumulation_trains_the_same_model_as_the_full_batch(
    batch_size: int, accumulation_steps: int
) -> None:
    task = get_task("digits-mlp")
    runs = [
        train(
            task,
            load_splits(task),
            TrainConfig(lr=3e-3, batch_size=batch_size, accumulation_steps=steps),
            epochs=2,
            device=CPU,
            seed=0,
        )
        for steps in (1, accumulation_steps)
    ]
    assert runs[1].micro_batch_size == -(-batch_size // accumulation_steps)
    assert runs[1].step_losses == pytest.approx(runs[0].step_losses, rel=1e-4, abs=1e-6)
    assert runs[1].final.val_loss == pytest.approx(runs[0].final.val_loss, rel=1e-4)


def test_accumulated_gradient_equals_the_batch_gradient() -> None:
    task = get_task("digits-mlp")
    x, y = load_splits(task).train  # type: ignore[misc]
    x, y = x[:50], y[:50]
    torch.manual_seed(0)
    model = task.build_model({})
    from stagetune.objectives._train import Precision, _accumulate

    _accumulate(task, model, Precision(False, CPU), x, y, micro=8)  # 8+8+...+2 rows
    accumulated = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    model.zero_grad()
    task.loss(model(x), y).backward()
    for got, want in zip(accumulated, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(got, want, atol=1e-6)


def test_accumulation_is_validated_against_the_batch() -> None:
    with pytest.raises(ConfigError, match="accumulation_steps must be an integer >= 1, but got 0"):
        TrainConfig(accumulation_steps=0)
    with pytest.raises(ConfigError, match=r"at most batch_size \(8\), but got 9"):
        TrainConfig(batch_size=8, accumulation_steps=9)
    config = TrainConfig(batch_size=5)
    halves = [config.micro_batch_size]
    while (smaller := config.with_half_micro_batch()) is not None:
        config = smaller
        halves.append(config.micro_batch_size)
    assert halves == [5, 3, 2, 1]
    assert config.batch_size == 5


# --- early stopping, schedules ----------------------------------------------------------


def _constant_metric_task(direction: str = "maximize") -> Task:
    digits = get_task("digits-mlp")
    return Task(
        name="constant-metric",
        load=digits.load,
        build_model=digits.build_model,
        metric=lambda outputs, targets: 0.5,
        direction=direction,  # type: ignore[arg-type]
    )


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    task = _constant_metric_task()
    config = TrainConfig(early_stopping_patience=2)
    result = train(task, load_splits(task), config, epochs=10, device=CPU, seed=0)
    assert [h.epoch for h in result.history] == [1, 2, 3]
    assert result.stopped_early
    assert (result.best_epoch, result.best_val_metric) == (1, 0.5)


def test_without_patience_every_epoch_runs_and_the_best_is_recorded() -> None:
    task = get_task("digits-mlp")
    result = train(task, load_splits(task), TrainConfig(lr=3e-3), epochs=4, device=CPU, seed=0)
    metrics = [h.val_metric for h in result.history]
    assert len(metrics) == 4 and not result.stopped_early
    assert result.best_val_metric == max(metrics)
    assert result.best_epoch == metrics.index(max(metrics)) + 1


def test_amp_is_a_no_op_on_the_cpu() -> None:
    task = get_task("digits-mlp")
    runs = [
        train(task, load_splits(task), TrainConfig(amp=amp), epochs=2, device=CPU, seed=3)
        for amp in (False, True)
    ]
    assert runs[0].step_losses == runs[1].step_losses


# --- data as a Dataset ----------------------------------------------------------------


def test_dataset_splits_train_through_a_dataloader() -> None:
    digits = get_task("digits-mlp")
    tensors = load_splits(digits)

    def load() -> Splits:
        return Splits(
            train=torch.utils.data.TensorDataset(*tensors.train),
            val=torch.utils.data.TensorDataset(*tensors.val),
        )

    task = Task(name="digits-dataset", load=load, build_model=digits.build_model)
    config = TrainConfig(lr=3e-3, batch_size=64, accumulation_steps=2)
    result = train(task, load_splits(task), config, epochs=4, device=CPU, seed=0)
    assert len(result.step_losses) == 4 * 17  # ceil(1078 / 64) steps per epoch
    assert result.final.val_metric > 0.85
    assert loader_workers(task, CPU) == 0


# --- threads ------------------------------------------------------------------------------
