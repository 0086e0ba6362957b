"""Why the loop keeps its own linear schedule instead of transformers' get_linear_schedule_with_warmup: the two
agree step for step without warm-up and after it, but not during warm-up, where transformers' first step has
learning rate 0. A checkpoint stores only the schedule's step, not its formula: swapping the formula would change
the rest of every resumed run with warm-up, so the library's stays."""

from __future__ import annotations

import torch
from transformers import get_linear_schedule_with_warmup

from attempt.training.loop import linear_schedule


def factors(make, warmup: int, total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make(optimizer, warmup, total)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_the_same_factors_without_warmup_and_after_it():
    assert factors(linear_schedule, 0, 10) == factors(get_linear_schedule_with_warmup, 0, 10)
    ours, theirs = factors(linear_schedule, 3, 10), factors(get_linear_schedule_with_warmup, 3, 10)
    assert ours[3:] == theirs[3:]


def test_warmup_differs_transformers_first_step_is_lost():
    ours, theirs = factors(linear_schedule, 3, 10), factors(get_linear_schedule_with_warmup, 3, 10)
    assert ours[:3] == [0.25, 0.5, 0.75] and theirs[:3] == [0.0, 1 / 3, 2 / 3]
