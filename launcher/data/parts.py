"""A shard's encoded columns (a part) as raw files written batch by batch, and a split's .npy columns assembled
from its parts in shard order by copying in chunks: memory stays that of a batch or a chunk, whatever the corpus.

Kinds of part columns: "ragged" (values + one length per row), "array" (rows of one shape), "stream" (a token
stream: the parts of a split, or of one mixture source, are laid end to end and cut into data.seq_len blocks, so
packing crosses shard boundaries as if the split were one file; only the split's or source's last partial block
is dropped), "rows" (row numbers of the split: shifted by the rows of the parts before) and "json".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from launcher.data.atomic import write_atomically, write_text_atomically
from launcher.data.store import Ragged, array_name
from launcher.errors import UserError

CHUNK = 1 << 24  # bytes copied at a time


class PartWriter:
    """Appends the encoded batches of one split of one shard to raw files in `directory`."""

    def __init__(self, directory: Path, split: str, streams: tuple[str, ...], row_numbers: tuple[str, ...]):
        self.dir, self.split, self.streams, self.row_numbers = directory, split, streams, row_numbers
        self.columns: dict[str, dict[str, Any]] = {}
        self.rows = 0  # input rows encoded so far

    def append(self, columns: dict[str, Any], rows: int) -> None:
        for name, column in columns.items():
            if isinstance(column, Ragged):
                self._add(name, "ragged", column.values, len(column))
                self._raw(f"{name}.lengths", column.lengths().astype(np.int64))
            elif name in self.streams:
                self._add(name, "stream", column, len(column))
            elif name in self.row_numbers:
                self._add(name, "rows", np.asarray(column, dtype=np.int64) + self.rows, len(column))
            elif isinstance(column, np.ndarray):
                self._add(name, "array", column, len(column))
            else:
                with open(self.dir / f"{self.split}.{name}.jsonl", "a") as handle:
                    handle.writelines(json.dumps(item) + "\n" for item in column)
                self._describe(name, "json", None, len(column))
        self.rows += rows

    def _add(self, name: str, kind: str, values: np.ndarray, items: int) -> None:
        self._raw(name, values)
        self._describe(name, kind, values, items)

    def _describe(self, name: str, kind: str, values: np.ndarray | None, items: int) -> None:
        entry = self.columns.setdefault(name, {"kind": kind, "items": 0})
        entry["items"] += items
        if values is not None:
            entry.update(dtype=values.dtype.str, tail=list(values.shape[1:]))

    def _raw(self, name: str, values: np.ndarray) -> None:
        with open(self.dir / f"{self.split}.{name}.bin", "ab") as handle:
            np.ascontiguousarray(values).tofile(handle)


def assemble(out: Path, split: str, parts: list[tuple[Path, dict[str, Any], int]], sources: int, seq_len: int,
             what: str) -> tuple[dict[str, str], list[int]]:
    """Write the split's columns from its parts: (directory, description, mixture source), in shard order.
    Returns {column: kind} for meta.json and the number of samples from each of the `sources`."""
    shifts = np.cumsum([0] + [description["rows"] for _, description, _ in parts[:-1]])
    parts = [(d, description, g, shift) for (d, description, g), shift in zip(parts, shifts) if description["columns"]]
    if not parts:
        return {}, [0] * sources
    names = parts[0][1]["columns"]
    kinds: dict[str, str] = {}
    counts: list[int] | None = None
    for name, first in names.items():
        column = [(d, description["columns"][name], g, shift) for d, description, g, shift in parts]
        kind = first["kind"]
        if kind == "ragged":
            _ragged(out, split, name, column)
        elif kind == "stream":
            counts = _stream(out, split, name, column, sources, seq_len, what)
        elif kind == "json":
            items = [json.loads(line) for d, *_ in column for line in (d / f"{split}.{name}.jsonl").read_text().splitlines()]
            write_text_atomically(out / f"{split}.{name}.json", json.dumps(items))
        else:
            _array(out, split, name, column, kind == "rows")
        kinds[name] = {"ragged": "ragged", "json": "json"}.get(kind, "array")
    if counts is None:
        first_column = next(iter(names))
        counts = [sum(description["columns"][first_column]["items"] for _, description, g, _ in parts if g == source)
                  for source in range(sources)]
    return kinds, counts


def _ragged(out: Path, split: str, name: str, column: list) -> None:
    total = sum(entry["items"] for _, entry, *_ in column)
    values = sum(_elements(d / f"{split}.{name}.bin", entry) for d, entry, *_ in column)
    _npy(out / f"{split}.{name}.npy", column[0][1]["dtype"], (values,),
         lambda handle: [_copy(d / f"{split}.{name}.bin", handle) for d, *_ in column])

    def offsets(handle: BinaryIO) -> None:
        base = np.zeros(1, dtype=np.int64)
        base.tofile(handle)
        for d, *_ in column:
            for lengths in _chunks(d / f"{split}.{name}.lengths.bin", np.int64):
                ends = base[-1] + np.cumsum(lengths)
                ends.tofile(handle)
                base = ends[-1:] if len(ends) else base

    _npy(out / f"{split}.{name}.offsets.npy", "<i8", (total + 1,), offsets)


def _array(out: Path, split: str, name: str, column: list, row_numbers: bool) -> None:
    first = column[0][1]
    total = sum(entry["items"] for _, entry, *_ in column)

    def fill(handle: BinaryIO) -> None:
        for d, _, _, shift in column:
            if row_numbers:
                for values in _chunks(d / f"{split}.{name}.bin", np.int64):
                    (values + shift).tofile(handle)
            else:
                _copy(d / f"{split}.{name}.bin", handle)

    _npy(out / array_name(split, name), first["dtype"], (total, *first["tail"]), fill)


def _stream(out: Path, split: str, name: str, column: list, sources: int, seq_len: int, what: str) -> list[int]:
    dtype = np.dtype(column[0][1]["dtype"])
    blocks = []
    for source in range(sources):
        tokens = sum(entry["items"] for _, entry, g, _ in column if g == source)
        if tokens < seq_len:
            raise UserError(f"{what}: {tokens} tokens, fewer than one sequence of data.seq_len={seq_len}")
        blocks.append(tokens // seq_len)

    def fill(handle: BinaryIO) -> None:
        for source, count in enumerate(blocks):
            left = count * seq_len * dtype.itemsize
            for d, _, g, _ in column:
                if g == source and left:
                    left -= _copy(d / f"{split}.{name}.bin", handle, left)

    _npy(out / array_name(split, name), dtype.str, (sum(blocks), seq_len), fill)
    return blocks


def _elements(path: Path, entry: dict) -> int:
    return path.stat().st_size // np.dtype(entry["dtype"]).itemsize


def _chunks(path: Path, dtype):
    with open(path, "rb") as handle:
        while True:
            values = np.fromfile(handle, dtype=dtype, count=CHUNK // np.dtype(dtype).itemsize)
            if not len(values):
                return
            yield values


def _copy(path: Path, handle: BinaryIO, limit: int | None = None) -> int:
    """Bytes of `path` (at most `limit`) appended to `handle`; returns how many."""
    copied = 0
    with open(path, "rb") as source:
        while limit is None or copied < limit:
            chunk = source.read(CHUNK if limit is None else min(CHUNK, limit - copied))
            if not chunk:
                break
            handle.write(chunk)
            copied += len(chunk)
    return copied


def _npy(path: Path, dtype: str, shape: tuple[int, ...], fill: Callable[[BinaryIO], Any]) -> None:
    """An .npy file written by `fill` after its header (numpy writes only whole in-memory arrays)."""

    def write(handle: BinaryIO) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        fill(handle)

    write_atomically(path, write)
