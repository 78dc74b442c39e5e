"""Prepared splits on disk: named columns as memory-mappable .npy files in the content-keyed cache.

A column is a fixed array (one row per example, or packed blocks) or ragged (variable-length rows:
the values of all rows back to back plus an offsets array). Eval-only text that metrics need (QA
contexts and answers) is a small JSON column. The files are assembled from the shards' parts (parts.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np


class Ragged:
    """Rows of different lengths: row i is values[offsets[i]:offsets[i + 1]]."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray):
        self.values, self.offsets = values, offsets

    @classmethod
    def from_rows(cls, rows: Iterable[Iterable[int]], dtype=np.int32) -> Ragged:
        rows = [np.asarray(row, dtype=dtype) for row in rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=offsets[1:])
        values = np.concatenate(rows) if rows else np.zeros(0, dtype=dtype)
        return cls(values.astype(dtype, copy=False), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def load_split(out: Path, split: str, kinds: dict[str, str]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "ragged":
            columns[name] = Ragged(np.load(out / f"{split}.{name}.npy", mmap_mode="r"),
                                   np.load(out / f"{split}.{name}.offsets.npy", mmap_mode="r"))
        elif kind == "array":
            columns[name] = np.load(out / array_name(split, name), mmap_mode="r")
        else:
            columns[name] = json.loads((out / f"{split}.{name}.json").read_text())
    return columns


def array_name(split: str, name: str) -> str:
    # packed blocks keep the plain name (train.npy / eval.npy) that clm caches have always had
    return f"{split}.npy" if name == "blocks" else f"{split}.{name}.npy"
