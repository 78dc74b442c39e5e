"""The LR schedules written in launcher/train/optim.py give transformers' get_scheduler factors, bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers import get_scheduler

from launcher.recipe.schema import TrainSpec
from launcher.train.optim import build_scheduler

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("ours", "theirs"), [("linear", "linear"), ("cosine", "cosine"),
                                              ("constant", "constant_with_warmup")])
@pytest.mark.parametrize(("warmup", "total"), [(0, 50), (7, 50), (10, 10)])
def test_schedules_equal_transformers(ours, theirs, warmup, total):
    def lrs(make) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
        scheduler = make(optimizer)
        values = []
        for _ in range(total + 2):
            values.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return values

    spec = TrainSpec(schedule=ours, warmup_steps=warmup, max_steps=total, lr=3e-3)
    expected = lrs(lambda o: get_scheduler(theirs, o, num_warmup_steps=warmup, num_training_steps=total))
    assert lrs(lambda o: build_scheduler(o, spec)) == expected
