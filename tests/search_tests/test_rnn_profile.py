"""The ``rnn`` profile tunes a real LSTM: clipping on at the guide's RNN row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import torch
from torch import nn

from stagetune.objectives import Splits, Task
from stagetune.search import StagedSearch
from stagetune.spaces import plan_from_toml


def _sequences() -> Splits:
    """Sequences of 12 steps; the class is whether their last three sum above zero."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(900, 12, 1, generator=generator)
    y = (x[:, -3:].sum(dim=(1, 2)) > 0).long()
    return Splits(train=(x[:600], y[:600]), val=(x[600:750], y[600:750]), test=(x[750:], y[750:]))


class _Lstm(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, 16, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def _build(params: Mapping[str, Any]) -> nn.Module:
    return _Lstm(float(params["dropout"]))


LSTM_TASK = Task(name="seq-lstm", load=_sequences, build_model=_build, profile="rnn", epochs=6)


def _configs(storage: str, name: str, stage: str) -> list[dict[str, Any]]:
    study = optuna.load_study(study_name=f"{name}/{stage}", storage=storage)
    return [t.user_attrs["config"] for t in study.trials]


def test_the_rnn_profile_trains_an_lstm_with_clipping(tmp_path: Any) -> None:
    storage = f"sqlite:///{tmp_path / 'rnn.db'}"
    plan = plan_from_toml(
        'profile = "rnn"\ntrials = 2\n'
        '[[stages]]\nname = "lr_range_test"\n'
        '[[stages]]\nname = "lr"\n'
        '[[stages]]\nname = "clip"\ntemplate = "grad_clip"\n'
    )
    torch.set_num_threads(1)
    result = StagedSearch(plan, LSTM_TASK, storage=storage, name="rnn", progress=None).run()
    lr_trials = _configs(storage, "rnn", "lr")
    assert {c["optimizer"] for c in lr_trials} == {"adamw"}
    assert {c["grad_clip"] for c in lr_trials} == {1.0}  # on, the row's lower end
    # The grad_clip stage searches the RNN row's two ends.
    assert sorted(c["grad_clip"] for c in _configs(storage, "rnn", "clip")) == [1.0, 5.0]
    assert result.best_params["grad_clip"] in (1.0, 5.0)
    assert result.best_value is not None and result.best_value > 0.6  # chance is 0.5
