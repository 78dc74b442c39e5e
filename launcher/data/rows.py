"""Read a split's files with `datasets` (text, jsonl, parquet, csv, .gz/.zst compressed, save_to_disk directories).

Every problem is one UserError naming the file and the line or row: a line that is not JSON, a
column the objective needs that the rows lack, a value of the wrong kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.data.sources import compressed, data_suffix, is_saved_dataset, open_binary
from launcher.errors import UserError

KINDS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class Rows:
    """The rows of one split and where each came from (for error messages)."""

    table: Any  # datasets.Dataset
    sources: list[tuple[str, int]]  # (file, first global row index), in order
    kind: str
    origin: Any = None  # for a subset: the rows' indices in the files' table

    def __len__(self) -> int:
        return len(self.table)

    def column(self, name: str) -> list[Any]:
        return self.table.with_format("arrow")[name].to_pylist()  # in C; datasets' own formatting goes row by row

    def subset(self, indices) -> Rows:
        """Some of the rows (a held-out eval fraction); errors still name the right file line."""
        origin = [int(self.origin[i]) if self.origin is not None else int(i) for i in indices]
        return Rows(self.table.select(indices), self.sources, self.kind, origin)

    def where(self, index: int) -> str:
        """'FILE:line N' (text, jsonl) or 'FILE row N' (parquet, csv) of row `index`."""
        if self.origin is not None:
            index = self.origin[index]
        file, first = next((f, s) for f, s in reversed(self.sources) if s <= index)
        row = index - first
        if self.kind == "json":
            return f"{file}:{_nonblank_line(file, row)}"
        if self.kind == "text":
            return f"{file}:{row + 1}"
        return f"{file} row {row + 1}"


def file_kind(files: list[str], fmt: str) -> str:
    if fmt != "auto":
        return {"jsonl": "json", "text": "text", "parquet": "parquet", "csv": "csv"}[fmt]
    kinds = {"arrow" if is_saved_dataset(Path(f)) else KINDS.get(data_suffix(f), "text") for f in files}
    if len(kinds) > 1:
        raise UserError(f"data: mixes {' and '.join(sorted(kinds))} files ({', '.join(files)}); use one format per split")
    return kinds.pop()


def read_rows(files: list[str], fmt: str, cache: Path, needed: dict[str, str], optional: tuple[str, ...] = ()) -> Rows:
    """Load `files` as one table; `needed` maps a column to the recipe key that names it; `optional` are kept."""
    import datasets

    datasets.disable_progress_bars()
    kind = file_kind(files, fmt)
    tables, sources, start = [], [], 0
    for file in files:
        if kind in ("json", "text", "csv"):
            _check_utf8(file)
        if kind in ("json", "text") and _blank(file):
            raise UserError(f"{file}: no rows; a split needs at least one example")
        try:
            if kind == "arrow":
                table = datasets.load_from_disk(file)
            else:
                table = datasets.load_dataset(kind, data_files=[file], split="train",
                                              cache_dir=str(cache / "hf-datasets"))
        except Exception as exc:  # datasets wraps parser errors in many types; all mean a bad file here
            raise UserError(_explain_unreadable(file, kind, exc)) from None
        if len(table) == 0:
            raise UserError(f"{file}: no rows; a split needs at least one example")
        if any("." in c and c not in table.column_names for c in needed):
            table = table.flatten()  # nested fields by dotted name: translation.en
        for column, key in needed.items():
            if column not in table.column_names:
                raise UserError(f"{file}: rows have no '{column}' column (columns: {', '.join(table.column_names)}); "
                                f"set {key}")
        keep = list(needed) + [c for c in optional if c in table.column_names and c not in needed]
        tables.append(table.select_columns(keep))
        sources.append((file, start))
        start += len(table)
    table = tables[0] if len(tables) == 1 else datasets.concatenate_datasets(tables)
    return Rows(table, sources, kind)


def _check_utf8(file: str) -> None:
    """datasets decodes text files as UTF-8 and fails deep inside pyarrow on the first bad byte; say where."""
    for number, line in _lines(file):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"{file}:{number}: not UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1}); "
                            "save the file as UTF-8") from None


def _lines(file: str):
    """(line number, bytes) of a file, decompressed; a truncated or corrupt .gz/.zst is an error naming the line."""
    number = 0
    try:
        with open_binary(file) as handle:
            for number, line in enumerate(handle, 1):
                yield number, line
    except (EOFError, OSError, ValueError) as exc:
        if not compressed(file):
            raise
        raise UserError(f"{file}:{number + 1}: truncated or corrupt compressed data ({_first_line(exc)}); "
                        "re-create or re-download this shard") from None
    except Exception as exc:  # zstandard.ZstdError: imported only when a .zst is read
        if not compressed(file) or type(exc).__name__ != "ZstdError":
            raise
        raise UserError(f"{file}:{number + 1}: truncated or corrupt compressed data ({_first_line(exc)}); "
                        "re-create or re-download this shard") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _blank(file: str) -> bool:
    return not any(line.strip() for _, line in _lines(file))


def _explain_unreadable(file: str, kind: str, exc: Exception) -> str:
    if kind == "json":
        for number, line in _lines(file):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return f"{file}:{number}: not valid JSON ({err.msg} at column {err.colno})"
            if not isinstance(value, dict):
                return f"{file}:{number}: expected a JSON object per line, got {type(value).__name__}"
    return f"{file}: cannot read as {kind}: {_first_line(exc)}"


def _nonblank_line(file: str, row: int) -> int:
    seen = -1
    for number, line in _lines(file):
        if line.strip():
            seen += 1
            if seen == row:
                return number
    return row + 1


def bad_row(rows: Rows, index: int, column: str, problem: str) -> UserError:
    return UserError(f"{rows.where(index)}: column '{column}': {problem}")


def text_value(rows: Rows, index: int, column: str, value: Any, allow_empty: bool = False) -> str:
    if value is None:
        raise bad_row(rows, index, column, "missing")
    if not isinstance(value, str):
        raise bad_row(rows, index, column, f"expected text, got {type(value).__name__} {_short(value)}")
    if not allow_empty and not value.strip():
        raise bad_row(rows, index, column, "empty")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
