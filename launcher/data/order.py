"""The data position is a number: sample k of a run is a pure function of (seed, k).

Written by hand because no library sampler has this property: resuming is O(1) and, with the same
global batch, the sequence of samples is identical whatever the number of processes.
"""

from __future__ import annotations

import numpy as np


class GlobalOrder:
    """Epoch e visits every block once, in a permutation seeded by (seed, e)."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.size)}
        return self._perms[epoch]

    def indices(self, start: int, count: int) -> np.ndarray:
        """Block indices for global sample positions [start, start + count)."""
        positions = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(positions // self.size):
            mask = positions // self.size == epoch
            out[mask] = self._perm(int(epoch))[positions[mask] % self.size]
        return out


def micro_batch_start(consumed: int, micro_step: int, micro_batch: int, world: int, rank: int) -> int:
    """Global position of the first sample of this rank's micro batch within the current step."""
    return consumed + (micro_step * world + rank) * micro_batch
