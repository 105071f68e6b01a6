"""mnist1d, generated locally, and the models of the mnist1d tasks.

The data comes only from ``mnist1d.data.make_dataset(get_dataset_args())``: the
package's generator with its default arguments (seed 42), never
``get_dataset``, which tries the network. Generating takes about a second and
is done once per process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagetune.objectives._tasks import Splits

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

#: mnist1d's sequences: 40 steps, 10 classes.
SEQUENCE_LENGTH = 40
CLASSES = 10
#: Rows of make_dataset's 4,000 training rows that become the validation split.
VAL_ROWS = 800
#: Training rows of the small-data task (mnist1d-mlp), where regularization matters.
SMALL_TRAIN_ROWS = 1000
#: Seed of the train/validation split (the data itself is seeded by mnist1d: 42).
SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def mnist1d_arrays() -> dict[str, np.ndarray]:
    """mnist1d as numpy arrays: ``x``, ``y`` (4,000 rows), ``x_test``, ``y_test`` (1,000).

    Deterministic: mnist1d seeds numpy's and Python's global generators itself;
    their previous states are restored afterwards, so that generating the data
    does not change anything else's random numbers.
    """
    import random

    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {key: np.asarray(data[key]) for key in ("x", "y", "x_test", "y_test")}


def load_mnist1d(train_rows: int | None = None) -> Splits:
    """A fixed, seeded split of mnist1d: train / validation (800) / test (1,000).

    Args:
        train_rows: Keep only this many training rows (``None``: all 3,200).

    Returns:
        Float32 inputs of shape ``(rows, 40)`` and int64 class targets.
    """
    import numpy as np
    import torch

    arrays = mnist1d_arrays()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(arrays["y"]))
    val_index, train_index = order[:VAL_ROWS], order[VAL_ROWS:]
    if train_rows is not None:
        train_index = train_index[:train_rows]

    def pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.from_numpy(np.asarray(y, dtype=np.int64)),
        )

    return Splits(
        train=pair(arrays["x"][train_index], arrays["y"][train_index]),
        val=pair(arrays["x"][val_index], arrays["y"][val_index]),
        test=pair(arrays["x_test"], arrays["y_test"]),
    )


def load_mnist1d_small() -> Splits:
    """mnist1d with 1,000 training rows (same validation and test splits)."""
    return load_mnist1d(SMALL_TRAIN_ROWS)


def build_cnn(params: Mapping[str, Any]) -> nn.Module:
    """A 1-D CNN for mnist1d: three conv blocks (BatchNorm, ReLU), global pooling, linear.

    Params: ``channels`` (32), ``dropout`` (spatial dropout after each block, 0).
    Input ``(batch, 40)``; output ``(batch, 10)`` logits.
    """
    from torch import nn

    channels = int(params.get("channels", 32))
    dropout = float(params.get("dropout", 0.0))

    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv1d(c_in, c_out, kernel_size=5, stride=stride, padding=2, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Dropout1d(dropout),
        ]

    return nn.Sequential(
        nn.Unflatten(1, (1, SEQUENCE_LENGTH)),
        *block(1, channels, 1),
        *block(channels, channels, 2),
        *block(channels, 2 * channels, 2),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(2 * channels, CLASSES),
    )


def build_transformer(params: Mapping[str, Any]) -> nn.Module:
    """A small pre-norm transformer encoder over mnist1d's 40 steps.

    Each patch of ``patch`` (4) consecutive steps is one token: a linear
    embedding plus a learned position embedding, ``layers`` (2) encoder layers
    of width ``d_model`` (64) with ``heads`` (4) heads and a 4x feed-forward,
    mean pooling, LayerNorm, linear. ``dropout`` (0) applies in attention and
    feed-forward, as ``nn.TransformerEncoderLayer`` does.
    """
    import torch
    from torch import nn

    d_model = int(params.get("d_model", 64))
    heads = int(params.get("heads", 4))
    layers = int(params.get("layers", 2))
    patch = int(params.get("patch", 4))
    dropout = float(params.get("dropout", 0.0))
    if SEQUENCE_LENGTH % patch:
        raise ValueError(f"patch must divide {SEQUENCE_LENGTH}, but got {patch}.")
    tokens = SEQUENCE_LENGTH // patch

    class Transformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(patch, d_model)
            self.position = nn.Parameter(torch.randn(1, tokens, d_model) / math.sqrt(d_model))
            layer = nn.TransformerEncoderLayer(
                d_model,
                heads,
                dim_feedforward=4 * d_model,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x.reshape(x.shape[0], tokens, patch)) + self.position
            h = self.encoder(h)
            return self.head(self.norm(h.mean(dim=1)))

    return Transformer()
