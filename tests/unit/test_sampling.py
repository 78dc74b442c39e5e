"""The data position is a number: the global sample sequence does not depend on the world size."""

from __future__ import annotations

import numpy as np
import pytest

from launcher.data.order import GlobalOrder, micro_batch_start
from launcher.data.permutation import Permutation, key_of, permute

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


def test_a_billion_samples_cost_no_memory_and_repeat_nothing_within_an_epoch():
    import time
    import tracemalloc

    order = GlobalOrder(size=10**9, seed=7)
    first = order.indices(0, 10**6)
    assert len(np.unique(first)) == 10**6 and first.min() >= 0 and first.max() < 10**9
    late = order.indices(10**9 - 500_000, 10**6)  # across the end of epoch 0
    assert len(np.unique(late[:500_000])) == 500_000 and len(np.unique(late[500_000:])) == 500_000
    assert np.array_equal(late[500_000:], GlobalOrder(size=10**9, seed=7).indices(10**9, 500_000))
    mixture = GlobalOrder([6 * 10**8, 3 * 10**8, 10**8], seed=7, weights=[0.5, 0.3, 0.2])
    for each in (order, mixture):
        began = time.perf_counter()
        for step in range(100):
            each.indices(123_456_789 + step * 1024, 1024)
        elapsed = (time.perf_counter() - began) / 100
        tracemalloc.start()  # on its own pass: tracing slows what it watches several times over
        for step in range(100, 120):
            each.indices(123_456_789 + step * 1024, 1024)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2 << 20  # bytes: a batch's own arrays and the mixture's round table, nothing of the 10^9
        assert elapsed < 5e-3  # per batch of 1024 (under 1 ms on an idle core; bench/sample_order.py measures it)


def test_batched_bijections_equal_each_on_its_own():
    perms = [Permutation(n, key_of(4, n)) for n in (1, 7, 10_000, 6 * 10**8)]
    which = np.arange(4000) % 4
    positions = np.arange(4000) % np.array([p.n for p in perms])[which]
    alone = np.concatenate([perms[i](positions[which == i]) for i in range(4)])
    assert np.array_equal(np.concatenate([permute(perms, which, positions)[which == i] for i in range(4)]), alone)
    assert np.array_equal(perms[2].table(), perms[2](np.arange(10_000)))


def test_small_orders_are_permutations():
    for size in (1, 2, 3, 5, 17, 1000, 4097):
        assert sorted(GlobalOrder(size=size, seed=1).indices(0, size)) == list(range(size))


def test_mixture_proportions_follow_the_weights():
    order = GlobalOrder([1000, 50, 7], seed=5, weights=[0.7, 0.2, 0.1])
    indices = order.indices(0, 10**5)
    counts = np.bincount(np.searchsorted(order.offsets, indices, side="right") - 1, minlength=3) / 10**5
    assert np.allclose(counts, [0.7, 0.2, 0.1], atol=0.01)
    assert np.array_equal(np.bincount(order.sources(0, 10**5), minlength=3) / 10**5, counts)
    assert order.consumed(10**5) == [int(c) for c in np.round(counts * 10**5)]
    assert order.consumed(12_345) == np.bincount(order.sources(0, 12_345), minlength=3).tolist()
    small = indices[:10_000][indices[:10_000] >= 1050]  # a round's 1000 draws of the 7-sample source: 142.9 epochs
    assert set(np.bincount(small - 1050).tolist()) == {142, 143}


def test_mixture_gives_same_samples_at_any_world_size():
    order = GlobalOrder([40, 25], seed=3, weights=[0.6, 0.4])
    assert (samples_seen(world=2, accum=1, micro=4, steps=30, order=order)
            == samples_seen(world=1, accum=2, micro=4, steps=30, order=order))


def test_a_plain_list_is_one_source_in_the_single_source_order():
    assert np.array_equal(GlobalOrder([30], seed=2).indices(0, 90), GlobalOrder(30, seed=2).indices(0, 90))
