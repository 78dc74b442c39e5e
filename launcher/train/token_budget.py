"""Token-budget micro batches (train.micro_batch_tokens): a rank's examples of a step, regrouped into micro
batches of at most that many tokens, so memory and step time stop swinging with example lengths.

Written by hand: samplers that bucket by length (transformers' group_by_length, torchtune's packing) decide
over the whole dataset, which breaks "sample k is a function of (seed, k)". Here only the grouping of a step's
own examples changes: which examples a step trains on, and the loss (token-weighted over the global batch),
are the same as without the budget, at any number of processes.
"""

from __future__ import annotations

import numpy as np


def budget_groups(lengths: np.ndarray, budget: int, packed: bool) -> list[np.ndarray]:
    """Positions into `lengths` (one row per example, one column per padded input: tokens, or source and
    target) grouped longest first into micro batches that cost at most `budget` tokens each: padded, rows
    times each input's longest row; packed, the sum. A function of the lengths only."""
    lengths = lengths.reshape(len(lengths), -1)
    order = np.argsort(-lengths.sum(axis=1), kind="stable")
    groups, current = [], []
    for i in order:
        if current and cost(lengths[current + [i]], packed) > budget:
            groups.append(np.array(current))
            current = []
        current.append(int(i))
    if current:
        groups.append(np.array(current))
    return groups


def cost(lengths: np.ndarray, packed: bool) -> int:
    """Tokens the model reads for these examples in one micro batch."""
    return int(lengths.sum()) if packed else len(lengths) * int(lengths.max(axis=0).sum())
