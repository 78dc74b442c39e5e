"""The data position is a number: the global sample sequence does not depend on the world size."""

from __future__ import annotations

import numpy as np
import pytest

from launcher.data.order import GlobalOrder, micro_batch_start

pytestmark = pytest.mark.unit


def samples_seen(world: int, accum: int, micro: int, steps: int, order: GlobalOrder) -> list[list[int]]:
    per_step = []
    consumed = 0
    for _ in range(steps):
        step = []
        for m in range(accum):
            for rank in range(world):
                step += order.indices(micro_batch_start(consumed, m, micro, world, rank), micro).tolist()
        per_step.append(sorted(step))
        consumed += micro * accum * world
    return per_step


def test_same_global_batch_gives_same_samples_at_any_world_size():
    order = GlobalOrder(size=50, seed=3)
    two_procs = samples_seen(world=2, accum=1, micro=4, steps=20, order=order)
    one_proc = samples_seen(world=1, accum=2, micro=4, steps=20, order=order)
    four_procs = samples_seen(world=4, accum=1, micro=2, steps=20, order=order)
    assert two_procs == one_proc == four_procs


def test_each_epoch_visits_every_block_once_in_a_new_order():
    order = GlobalOrder(size=10, seed=0)
    first, second = order.indices(0, 10), order.indices(10, 10)
    assert sorted(first) == sorted(second) == list(range(10))
    assert not np.array_equal(first, second)
    assert np.array_equal(order.indices(5, 10), np.concatenate([first[5:], second[:5]]))
