"""A command-line trainer that knows nothing of stagetune: flags in, one line per epoch out.

    python examples/cli_trainer.py --lr 0.003 --weight-decay 1e-4 --dropout 0.1 --epochs 10

It fits a small MLP to a noisy sine wave (made up here: nothing is downloaded) and
prints, after every epoch, ``epoch <n> train_loss <x> val_loss <y>`` (both MSE).
``examples/ask_tell.sh`` tunes it through ``stagetune ask`` / ``tell-epoch`` / ``tell``.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from torch import nn


def data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(512, 1, generator=generator) * 2 * math.pi
    noise = 0.1 * torch.randn(512, 1, generator=generator)
    return x, torch.sin(x) + noise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    x_train, y_train = data(0)
    x_val, y_val = data(1)
    torch.manual_seed(args.seed)
    model = nn.Sequential(
        nn.Linear(1, 64), nn.Tanh(), nn.Dropout(args.dropout), nn.Linear(64, 64), nn.Tanh(),
        nn.Linear(64, 1),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        total = 0.0
        for index in order.split(args.batch_size):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        model.eval()
        with torch.no_grad():
            val_loss = nn.functional.mse_loss(model(x_val), y_val).item()
        print(f"epoch {epoch} train_loss {total / len(x_train):.6g} val_loss {val_loss:.6g}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
