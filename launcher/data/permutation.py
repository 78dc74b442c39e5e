"""Keyed pseudo-random bijections of [0, n): a Feistel network with cycle-walking.

permute(x) for any x in [0, n) is computed on its own, in O(1) memory and a few dozen integer
operations, so nothing of size n is ever built: a shuffled epoch over 10^9 samples costs the same
memory as one over 10. The network permutes [0, 2^b), the smallest power of two >= n (its rounds split b bits
unevenly when b is odd); an output outside [0, n) is fed through again (cycle-walking) until it lands
inside, which keeps the map a bijection of [0, n); since 2^b < 2n, that takes under two passes on average.

`permute` runs several bijections over one array at once (each element names its own), so a mixture's
sources and epochs cost one pass of numpy calls per cycle-walking step instead of one per bijection:
the cost of a batch is in the number of numpy calls, not in the 1024 elements they work on.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_WORD = (1 << 64) - 1
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
TAIL = 16  # fewer values than this left to walk: one by one in Python ints (a numpy pass costs ~90 calls)
_N, _LOW, _HIGH, _LOW_MASK, _HIGH_MASK, _KEYS = range(6)  # columns of Permutation.params (round keys last)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread hash of uint64 values (wraps modulo 2^64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def mix_int(x: int) -> int:
    """`mix` of one Python int: ~50x cheaper than a numpy call on one value (the cycle-walking tail, keys)."""
    x ^= x >> 30
    x = (x * int(_M1)) & _WORD
    x ^= x >> 27
    x = (x * int(_M2)) & _WORD
    return x ^ (x >> 31)


def key_of(*parts: int) -> int:
    """One 64-bit key from integers (seed, epoch, source, ...)."""
    key = 0
    for part in parts:
        key = mix_int(key ^ ((part + int(_GOLDEN)) & _WORD))
    return key


class Permutation:
    """A bijection of [0, n) chosen by `key`; `self(x)` maps an array of positions."""

    def __init__(self, n: int, key: int):
        if n < 1:
            raise ValueError("a permutation needs n >= 1")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        low = bits // 2
        keys = [key_of(key, r) for r in range(ROUNDS)]
        self.params = np.array([n, low, bits - low, (1 << low) - 1, (1 << (bits - low)) - 1, *keys], dtype=np.uint64)

    def __call__(self, positions) -> np.ndarray:
        x = np.asarray(positions, dtype=np.uint64)
        return permute([self], np.zeros(x.shape, dtype=np.intp), x)

    def table(self) -> np.ndarray:
        """[self(0), ..., self(n - 1)] for a small n: the network runs once over [0, 2^bits), and cycle-walking
        follows that table (one lookup a step instead of a network pass)."""
        bits = int(self.params[_LOW] + self.params[_HIGH])
        network = _network(np.arange(1 << bits, dtype=np.uint64), self.params).astype(np.int64)
        out = network[:self.n].copy()
        outside = np.flatnonzero(out >= self.n)
        while len(outside):
            out[outside] = network[out[outside]]
            outside = outside[out[outside] >= self.n]
        return out


def permute(perms: list[Permutation], which: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """perms[which[i]](positions[i]) for every i, all in the same numpy calls."""
    params = np.stack([p.params for p in perms])[which]
    x = _network(np.asarray(positions, dtype=np.uint64), params)
    outside = np.flatnonzero(x >= params[:, _N])
    while len(outside) > TAIL:
        walking = params[outside]
        walked = _network(x[outside], walking)
        x[outside] = walked
        outside = outside[walked >= walking[:, _N]]
    for i in outside.tolist():
        x[i] = _walk_one(int(x[i]), params[i].tolist())
    return x.astype(np.int64)


def _network(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Each round keeps the low bits, mixes them into the high ones, then rotates: a bijection of [0, 2^bits).
    `params`: one row per value of x, or one row for all of them."""
    low_bits, high_bits, low_mask, high_mask = (params[..., c] for c in (_LOW, _HIGH, _LOW_MASK, _HIGH_MASK))
    for r in range(ROUNDS):
        low = x & low_mask
        high = (x >> low_bits) ^ (mix(low ^ params[..., _KEYS + r]) & high_mask)
        x = (low << high_bits) | high
    return x


def _walk_one(x: int, params: list[int]) -> int:
    """_network on one value, fed through again until it lands in [0, n): the few stragglers of a batch."""
    n, low_bits, high_bits, low_mask, high_mask = params[:_KEYS]
    while x >= n:
        for key in params[_KEYS:]:
            low = x & low_mask
            x = (low << high_bits) | ((x >> low_bits) ^ (mix_int(low ^ key) & high_mask))
    return x
