"""Token-budget grouping: every example of a step lands in exactly one micro batch, and none costs more
than the budget (padded: rows x longest per input; packed: the sum)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.train.token_budget import budget_groups, cost

pytestmark = pytest.mark.unit


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.tuples(st.integers(1, 64), st.integers(1, 32)), min_size=1, max_size=40),
       packed=st.booleans(), extra=st.integers(0, 200), parts=st.sampled_from([1, 2]))
def test_groups_cover_every_example_once_and_stay_within_the_budget(lengths, packed, extra, parts):
    table = np.array(lengths)[:, :parts]
    budget = int(table.sum(axis=1).max()) + extra  # the schema asks for at least the longest example
    groups = budget_groups(table, budget, packed)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(table)))
    assert all(cost(table[g], packed) <= budget for g in groups)


def test_padded_groups_read_fewer_tokens_than_micro_batches_in_data_order():
    lengths = np.array([10, 90, 12, 88, 11, 91])
    groups = budget_groups(lengths, 200, packed=False)
    assert [sorted(lengths[g].tolist()) for g in groups] == [[90, 91], [12, 88], [10, 11]]
    in_order = sum(cost(lengths[i:i + 2], False) for i in range(0, 6, 2))  # micro_batch_size 2: 180 + 176 + 182
    assert sum(cost(lengths[g], False) for g in groups) == 380 < in_order == 538
