"""Prepared splits on disk: named columns as memory-mappable .npy files in the content-keyed cache.

A column is a fixed array (one row per example, or packed blocks) or ragged (variable-length rows:
the values of all rows back to back plus an offsets array). Eval-only text that metrics need (QA
contexts and answers) is a small JSON column.
"""

from __future__ import annotations

import json
import os
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


def concat_columns(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns of several encoded parts (a mixture's sources) as one split, rows in part order."""
    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        columns = [part[name] for part in parts]
        if isinstance(first, Ragged):
            starts = np.cumsum([0] + [len(c.values) for c in columns[:-1]])
            offsets = np.concatenate([columns[0].offsets[:1]] + [c.offsets[1:] + s for c, s in zip(columns, starts)])
            out[name] = Ragged(np.concatenate([c.values for c in columns]), offsets.astype(np.int64))
        elif isinstance(first, np.ndarray):
            out[name] = np.concatenate(columns)
        else:
            out[name] = [item for column in columns for item in column]
    return out


def save_split(out: Path, split: str, columns: dict[str, Any]) -> dict[str, str]:
    """Write every column of a split; returns {name: kind} for the cache's meta.json."""
    kinds = {}
    for name, column in columns.items():
        if isinstance(column, Ragged):
            _save(out / f"{split}.{name}.npy", column.values)
            _save(out / f"{split}.{name}.offsets.npy", column.offsets)
            kinds[name] = "ragged"
        elif isinstance(column, np.ndarray):
            _save(out / _array_name(split, name), column)
            kinds[name] = "array"
        else:
            tmp = out / f".{split}.{name}.json.tmp"
            tmp.write_text(json.dumps(column))
            os.replace(tmp, out / f"{split}.{name}.json")
            kinds[name] = "json"
    return kinds


def load_split(out: Path, split: str, kinds: dict[str, str]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "ragged":
            columns[name] = Ragged(np.load(out / f"{split}.{name}.npy", mmap_mode="r"),
                                   np.load(out / f"{split}.{name}.offsets.npy", mmap_mode="r"))
        elif kind == "array":
            columns[name] = np.load(out / _array_name(split, name), mmap_mode="r")
        else:
            columns[name] = json.loads((out / f"{split}.{name}.json").read_text())
    return columns


def _array_name(split: str, name: str) -> str:
    # packed blocks keep the plain name (train.npy / eval.npy) that clm caches have always had
    return f"{split}.npy" if name == "blocks" else f"{split}.{name}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, np.ascontiguousarray(array))
    os.replace(tmp, path)
