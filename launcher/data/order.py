"""The data position is a number: sample k of a run is a pure function of (seed, k).

Written by hand because no library sampler has this property: resuming is O(1) and, with the same
global batch, the sequence of samples is identical whatever the number of processes. Nothing of the
size of the data is built: every position is mapped through keyed bijections (permutation.py), so a
process holds O(number of sources) memory whether the data has 10 samples or 10^9.

One source: epoch e visits every sample once, in the order of a bijection keyed by (seed, e).
Several sources with weights: positions come in rounds of ROUND; a round holds each source's share of
ROUND slots (its weight, rounded by largest remainder), shuffled by a bijection keyed by (seed, round),
so proportions are exact to 1/ROUND in every round. A source's own draws run through its epochs the
same way as a single source, and a small source simply starts its next epoch sooner.
"""

from __future__ import annotations

import numpy as np

from launcher.data.permutation import Permutation, key_of, permute

ROUND = 10_000
_MIX = 0x6D6978  # keeps the round keys apart from the epoch keys


class GlobalOrder:
    """Sample indices (into the sources' samples laid end to end) for global positions."""

    def __init__(self, size: int | list[int], seed: int, weights: list[float] | None = None):
        self.sizes = [size] if isinstance(size, int) else list(size)
        self.seed = seed
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.size = int(self.offsets[-1])
        self.size_of = np.asarray(self.sizes, dtype=np.int64)
        self.shares = _shares(weights or [1.0] * len(self.sizes))
        self.share_starts = np.concatenate([[0], np.cumsum(self.shares)]).astype(np.int64)
        self._epochs: dict[tuple[int, int], Permutation] = {}
        self._rounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def indices(self, start: int, count: int) -> np.ndarray:
        """Sample indices for global positions [start, start + count)."""
        source, draw = self._draws(np.arange(start, start + count, dtype=np.int64))
        epoch, local = np.divmod(draw, self.size_of[source])
        kinds = len(self.sizes)
        codes, which = np.unique(epoch * kinds + source, return_inverse=True)  # one bijection per (source, epoch)
        perms = [self._epoch(code % kinds, code // kinds) for code in codes.tolist()]
        return self.offsets[source] + permute(perms, which, local)

    def sources(self, start: int, count: int) -> np.ndarray:
        """Which source each of global positions [start, start + count) draws from."""
        return self._draws(np.arange(start, start + count, dtype=np.int64))[0]

    def consumed(self, positions: int) -> list[int]:
        """Samples drawn from each source by the first `positions` positions (no state: a count)."""
        rounds, rest = divmod(positions, ROUND)
        partial = np.bincount(self.sources(rounds * ROUND, rest), minlength=len(self.sizes))
        return [int(rounds * share + extra) for share, extra in zip(self.shares, partial)]

    def _draws(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source, how many draws that source had before) for each position."""
        if len(self.sizes) == 1:
            return np.zeros(len(positions), dtype=np.int64), positions
        rounds, place = np.divmod(positions, ROUND)
        source, before = np.empty_like(place), np.empty_like(place)
        for r in np.unique(rounds):
            mask = rounds == r
            round_source, round_before = self._round(int(r))
            source[mask], before[mask] = round_source[place[mask]], round_before[place[mask]]
        return source, rounds * self.shares[source] + before

    def _epoch(self, source: int, epoch: int) -> Permutation:
        key = (source, epoch)
        if key not in self._epochs:  # a few per source: the epochs before are never asked for again
            if len(self._epochs) > 4 * len(self.sizes):
                self._epochs = {}
            # source 0's keys are those of a single-source order, so a plain list keeps its order
            parts = (self.seed, epoch) if source == 0 else (self.seed, epoch, source)
            self._epochs[key] = Permutation(self.sizes[source], key_of(*parts))
        return self._epochs[key]

    def _round(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """For each place of round r: its source, and that source's draws before it within the round.
        Tabulated once per round (2 x 80 KB), so a batch looks its places up instead of permuting them."""
        if r not in self._rounds:
            slot = Permutation(ROUND, key_of(self.seed, _MIX, r)).table()
            source = np.searchsorted(self.share_starts, slot, side="right") - 1
            self._rounds = {r: (source, slot - self.share_starts[source])}
        return self._rounds[r]


def _shares(weights: list[float]) -> np.ndarray:
    """Slots per round for each source: weight x ROUND by largest remainder (at least 1 for a weight > 0)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = w / w.sum() * ROUND
    shares = np.floor(exact).astype(np.int64)
    shares[(shares == 0) & (w > 0)] = 1
    short = ROUND - int(shares.sum())
    if short > 0:
        shares[np.argsort(-(exact - shares), kind="stable")[:short]] += 1
    elif short < 0:
        shares[np.argsort(-shares, kind="stable")[:-short]] -= 1
    return shares


def micro_batch_start(consumed: int, micro_step: int, micro_batch: int, world: int, rank: int) -> int:
    """Global position of the first sample of this rank's micro batch within the current step."""
    return consumed + (micro_step * world + rank) * micro_batch
