"""A keyed pseudo-random bijection of [0, n): a Feistel network with cycle-walking.

permute(x) for any x in [0, n) is computed on its own, in O(1) memory and a few dozen integer
operations, so nothing of size n is ever built: a shuffled epoch over 10^9 samples costs the same
memory as one over 10. The network permutes [0, 2^b), the smallest power of two >= n (its rounds split b bits
unevenly when b is odd); an output outside [0, n) is fed through again (cycle-walking) until it lands
inside, which keeps the map a bijection of [0, n); since 2^b < 2n, that takes under two passes on average.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_WORD = (1 << 64) - 1
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread hash of uint64 values (wraps modulo 2^64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def key_of(*parts: int) -> int:
    """One 64-bit key from integers (seed, epoch, source, ...)."""
    key = 0
    for part in parts:
        key = int(mix(np.array([key ^ ((part + int(_GOLDEN)) & _WORD)], dtype=np.uint64))[0])
    return key


class Permutation:
    """A bijection of [0, n) chosen by `key`; `self(x)` maps an array of positions."""

    def __init__(self, n: int, key: int):
        if n < 1:
            raise ValueError("a permutation needs n >= 1")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        low = bits // 2
        self.low, self.high = np.uint64(low), np.uint64(bits - low)
        self.low_mask, self.high_mask = np.uint64((1 << low) - 1), np.uint64((1 << (bits - low)) - 1)
        self.keys = [np.uint64(key_of(key, r)) for r in range(ROUNDS)]

    def _network(self, x: np.ndarray) -> np.ndarray:
        """Each round keeps the low bits, mixes them into the high ones, then rotates: a bijection of [0, 2^bits)."""
        for round_key in self.keys:
            low = x & self.low_mask
            high = (x >> self.low) ^ (mix(low ^ round_key) & self.high_mask)
            x = (low << self.high) | high
        return x

    def __call__(self, positions) -> np.ndarray:
        x = np.asarray(positions, dtype=np.uint64)
        if self.n == 1:
            return np.zeros(x.shape, dtype=np.int64)
        x = self._network(x)
        outside = x >= np.uint64(self.n)
        while outside.any():
            x[outside] = self._network(x[outside])
            outside = x >= np.uint64(self.n)
        return x.astype(np.int64)
