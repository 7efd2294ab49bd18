"""The seed document's "Complete Training Loop", end to end, against the same loop in PyTorch.

Every other parity test checks one piece (an op, a layer, an optimizer, a scheduler, clipping);
this one checks that the pieces compose as torch's do: the same CNN with the same weights, the
same Digits batches, model -> tape -> gradients in the flat buffer -> clipping -> optimizer kernel
-> scheduler, for several optimizer/scheduler pairs, in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from extensor import Tape, manual_seed
from extensor import nn as xnn
from extensor.data import DataLoader
from extensor.data.datasets import Digits
from extensor.training import clip_grad_norm
from extensor.training import optimizers as xopt
from extensor.training import schedulers as xsched

STEPS = 40


def build_pair() -> tuple[xnn.Module, torch.nn.Module]:
    """A small LeNet-style CNN in both libraries, float64, with extensor's initial weights copied to torch."""
    manual_seed(0)
    ours = xnn.Sequential(
        xnn.Conv2d(1, 4, 3, padding=1),
        xnn.ReLU(),
        xnn.MaxPool2d(2),
        xnn.Flatten(),
        xnn.Linear(4 * 4 * 4, 32),
        xnn.Tanh(),
        xnn.Linear(32, 10),
    ).double()
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 10),
    ).double()
    theirs.load_state_dict(
        {name: torch.from_numpy(np.array(value)) for name, value in ours.state_dict().items()}
    )
    return ours, theirs


Recipe = tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]]

#: name -> (our optimizer, torch optimizer, our scheduler, torch scheduler) factories
RECIPES: dict[str, Recipe] = {
    "adamw-cosine (the seed's loop)": (
        lambda p: xopt.AdamW(p, lr=1e-2),
        lambda p: torch.optim.AdamW(p, lr=1e-2),
        lambda o: xsched.CosineAnnealingLR(o, T_max=10),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    ),
    "sgd-nesterov-onecycle": (
        lambda p: xopt.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
        lambda o: xsched.OneCycleLR(o, max_lr=0.2, total_steps=STEPS),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=STEPS),
    ),
    "adam-amsgrad-step": (
        lambda p: xopt.Adam(p, lr=3e-3, weight_decay=1e-3, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=3e-3, weight_decay=1e-3, amsgrad=True),
        lambda o: xsched.StepLR(o, step_size=7, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
    ),
    "rmsprop-centered-warmup-cosine": (
        lambda p: xopt.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5, centered=True),
        lambda o: xsched.SequentialLR(
            o,
            [
                xsched.LinearLR(o, start_factor=0.1, total_iters=5),
                xsched.CosineAnnealingLR(o, T_max=STEPS - 5),
            ],
            milestones=[5],
        ),
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS - 5),
            ],
            milestones=[5],
        ),
    ),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_training_loop_matches_torch(recipe: str) -> None:
    make_ours, make_theirs, schedule_ours, schedule_theirs = RECIPES[recipe]
    model, reference = build_pair()
    criterion, reference_criterion = xnn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    optimizer = make_ours(model.parameters())
    reference_optimizer = make_theirs(reference.parameters())
    scheduler = schedule_ours(optimizer)
    reference_scheduler = schedule_theirs(reference_optimizer)
    loader = DataLoader(Digits(train=True), batch_size=32, shuffle=True, seed=1)

    steps = 0
    while steps < STEPS:
        model.train()
        for batch in loader:
            inputs = batch.input.data.astype(np.float64)
            tape = Tape()
            with tape:
                loss = criterion.forward(model.forward(inputs), batch.target)
            optimizer.zero_grad()
            tape.backward(loss)
            norm = clip_grad_norm(model.parameters(), max_norm=1.0)
            optimizer.step()
            scheduler.step()

            reference_optimizer.zero_grad()
            reference_loss = reference_criterion(
                reference(torch.from_numpy(inputs)), torch.from_numpy(batch.target.data)
            )
            reference_loss.backward()
            reference_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=1.0)
            reference_optimizer.step()
            reference_scheduler.step()

            np.testing.assert_allclose(
                loss.item(), reference_loss.item(), rtol=1e-9, err_msg=f"loss, step {steps}"
            )
            np.testing.assert_allclose(
                float(norm), float(reference_norm), rtol=1e-9, err_msg=f"norm, step {steps}"
            )
            assert scheduler.get_last_lr() == pytest.approx(reference_scheduler.get_last_lr(), rel=1e-12)
            steps += 1
            if steps == STEPS:
                break

    theirs = dict(reference.named_parameters())
    for name, parameter in model.named_parameters():
        expected = theirs[name].detach().numpy()
        scale = float(np.max(np.abs(expected)))
        np.testing.assert_allclose(parameter.data, expected, rtol=1e-9, atol=1e-9 * scale, err_msg=name)
