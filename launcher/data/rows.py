"""Read a split's files into one Arrow table: JSON lines up to DIRECT_BYTES with pyarrow itself, everything else
(text, parquet, csv, bigger or unusual JSON, save_to_disk directories) with `datasets`, which memory-maps a
file's Arrow copy. Importing datasets and setting up its builder cost about 0.7 s of a worker's start; the
tables are the same, as datasets reads JSON lines with the same pyarrow reader.

Every problem is one UserError naming the file and the line or row: a line that is not JSON, a
column the objective needs that the rows lack, a value of the wrong kind.
"""

from __future__ import annotations

import codecs
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.data.sources import compressed, data_suffix, is_saved_dataset, open_binary
from launcher.errors import UserError

DIRECT_BYTES = 64 << 20  # a JSON lines file up to this size (compressed: an eighth) is read whole into memory
KINDS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class Rows:
    """The rows of one split and where each came from (for error messages)."""

    table: Any  # pyarrow.Table
    sources: list[tuple[str, int]]  # (file, first global row index), in order
    kind: str
    origin: Any = None  # for a subset: the rows' indices in the files' table

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def column_names(self) -> list[str]:
        return self.table.column_names

    def column(self, name: str) -> list[Any]:
        return self.table[name].to_pylist()

    def subset(self, indices) -> Rows:
        """Some of the rows (a held-out eval fraction); errors still name the right file line."""
        origin = [int(self.origin[i]) if self.origin is not None else int(i) for i in indices]
        return Rows(self.table.take(indices), self.sources, self.kind, origin)

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
    import pyarrow as pa

    kind = file_kind(files, fmt)
    tables, sources, start = [], [], 0
    for file in files:
        data = _small_file(file) if kind == "json" else None  # read once, for the checks and the table
        if kind in ("json", "text", "csv"):
            _check_utf8(file, data)
        if kind in ("json", "text") and _blank(file, data):
            raise UserError(f"{file}: no rows; a split needs at least one example")
        table = _json_lines(data) if data is not None else None
        if table is None:
            table = _with_datasets(file, kind, cache)
        if table.num_rows == 0:
            raise UserError(f"{file}: no rows; a split needs at least one example")
        if any("." in c and c not in table.column_names for c in needed):
            table = table.flatten()  # nested fields by dotted name: translation.en
        for column, key in needed.items():
            if column not in table.column_names:
                raise UserError(f"{file}: rows have no '{column}' column (columns: {', '.join(table.column_names)}); "
                                f"set {key}")
        keep = list(needed) + [c for c in optional if c in table.column_names and c not in needed]
        tables.append(table.select(keep))
        sources.append((file, start))
        start += table.num_rows
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
    return Rows(table, sources, kind)


def _small_file(file: str) -> bytes | None:
    """The bytes of a file of up to DIRECT_BYTES (compressed: an eighth), decompressed; None for a bigger one."""
    limit = DIRECT_BYTES // 8 if compressed(file) else DIRECT_BYTES
    if Path(file).stat().st_size > limit:
        return None
    return b"".join(line for _, line in _lines(file))


def _json_lines(data: bytes):
    """A small JSON lines file's bytes through pyarrow's reader in one block; None for anything it does not read
    as such (a JSON array, mixed types): datasets then reads the file, or explains what is wrong with it."""
    import pyarrow as pa
    import pyarrow.json as paj

    data = data.removeprefix(codecs.BOM_UTF8)
    if data.lstrip().startswith(b"["):
        return None
    try:
        table = paj.read_json(io.BytesIO(data), read_options=paj.ReadOptions(block_size=max(len(data), 1 << 16)))
        table.validate()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table


def _with_datasets(file: str, kind: str, cache: Path):
    import datasets

    datasets.disable_progress_bars()
    try:
        if kind == "arrow":
            dataset = datasets.load_from_disk(file)
        else:
            # on_mixed_types=None: objects whose keys differ from row to row (chat messages with a "name" in some)
            # stay objects, missing keys None, as pyarrow reads them above; datasets' default turns them into
            # JSON strings
            mixed = {"on_mixed_types": None} if kind == "json" else {}
            dataset = datasets.load_dataset(kind, data_files=[file], split="train", cache_dir=str(cache / "hf-datasets"),
                                            **mixed)
    except Exception as exc:  # datasets wraps parser errors in many types; all mean a bad file here
        raise UserError(_explain_unreadable(file, kind, exc)) from None
    return dataset.with_format("arrow")[:]  # its memory-mapped table (an index mapping applied)


def _check_utf8(file: str, data: bytes | None = None) -> None:
    """datasets decodes text files as UTF-8 and fails deep inside pyarrow on the first bad byte; say where.
    `data`: the file's bytes, already read (its lines are read again only to name a bad one)."""
    if data is not None and _is_utf8(data):
        return
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


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _blank(file: str, data: bytes | None = None) -> bool:
    if data is not None:
        return not data.strip()
    return not any(line.strip() for _, line in _lines(file))


def _explain_unreadable(file: str, kind: str, exc: Exception) -> str:
    if kind == "json":
        for number, line in _lines(file):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return not_json(file, number, err)
            if not isinstance(value, dict):
                return f"{file}:{number}: expected a JSON object per line, got {type(value).__name__}"
    return f"{file}: cannot read as {kind}: {_first_line(exc)}"


def not_json(file: str, number: int, err: json.JSONDecodeError) -> str:
    return f"{file}:{number}: not valid JSON ({err.msg} at column {err.colno})"


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
