"""Train an MLP or a LeNet-5-style CNN on the 8x8 handwritten Digits: the seed's complete training loop.

    python examples/train_digits.py --model cnn          # 30 epochs, lr 1e-2
    python examples/train_digits.py --model mlp          # 20 epochs, lr 3e-3
    python examples/train_digits.py --model cnn --epochs 10 --seed 3

The two networks:

* MLP: Flatten -> Linear(64, 128) -> ReLU -> Linear(128, 128) -> ReLU -> Linear(128, 10).
* CNN: LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition")
  scaled to 8x8 images: Conv(1->6, 3x3, pad 1) ReLU MaxPool2 -> Conv(6->16, 3x3, pad 1) ReLU
  MaxPool2 -> Flatten (16x2x2) -> Linear 64-120-84-10 with ReLU.

Either is trained with AdamW and a cosine learning-rate schedule, gradients clipped to norm 1, on
the 1,438 training images; the script prints the test accuracy on the 359 held-out images after
every epoch (>= 95% at the end). Everything random (initialisation, shuffling) flows from
`--seed`, so a run repeats exactly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from extensor import Tape, nn, no_grad
from extensor.core.random import manual_seed
from extensor.data import DataLoader
from extensor.data.datasets import Digits
from extensor.training import clip_grad_norm
from extensor.training.optimizers import AdamW
from extensor.training.schedulers import CosineAnnealingLR

#: per model: the epochs and learning rate that reach >= 95% test accuracy
DEFAULTS = {"mlp": {"epochs": 20, "lr": 3e-3}, "cnn": {"epochs": 30, "lr": 1e-2}}


def build_model(name: str) -> nn.Module:
    """The network `name` ("mlp" or "cnn"): a (1, 8, 8) image in, 10 class logits out."""
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 2 * 2, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )
    raise ValueError(f"model must be 'mlp' or 'cnn', got {name!r}")


def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """The fraction of samples whose largest logit is the true class (evaluation mode, no tape)."""
    model.eval()
    correct = total = 0
    with no_grad():
        for batch in loader:
            predicted = model(batch.input).data.argmax(axis=1)
            correct += int((predicted == batch.target.data).sum())
            total += len(predicted)
    return correct / total


def train(
    model_name: str = "cnn",
    epochs: int | None = None,
    seed: int = 0,
    lr: float | None = None,
    verbose: bool = True,
) -> float:
    """Train `model_name` from scratch and return the final test accuracy."""
    epochs = DEFAULTS[model_name]["epochs"] if epochs is None else epochs
    lr = DEFAULTS[model_name]["lr"] if lr is None else lr
    manual_seed(seed)  # the initial weights come from the default generator
    train_loader = DataLoader(Digits(train=True), batch_size=32, shuffle=True, seed=seed)
    test_loader = DataLoader(Digits(train=False), batch_size=359)
    model = build_model(model_name)
    criterion = nn.CrossEntropyLoss()
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    test_accuracy = 0.0
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in train_loader:
            tape = Tape()
            with tape:
                loss = criterion.forward(model.forward(batch.input), batch.target)
            optimizer.zero_grad()
            tape.backward(loss)  # returns the gradients and accumulates them into .grad
            clip_grad_norm(model.parameters(), max_norm=1.0)
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        test_accuracy = accuracy(model, test_loader)
        if verbose:
            print(f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  test accuracy {test_accuracy:.2%}")
    return test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description="Train an MLP or a LeNet-5-style CNN on the 8x8 Digits.")
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="cnn")
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 (mlp), 30 (cnn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None, help="default: 3e-3 (mlp), 1e-2 (cnn)")
    args = parser.parse_args()
    start = time.perf_counter()
    final = train(args.model, args.epochs, args.seed, args.lr)
    print(f"final test accuracy {final:.2%} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
