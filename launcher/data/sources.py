"""Input names as corpora are stored: a file, a glob (`web/*.jsonl.zst`), a directory of shards, or a
`datasets` save_to_disk directory; shards may be .gz or .zst compressed.

`expand` turns the recipe's names into the files (or save_to_disk directories) read, in a fixed order
(names in recipe order, each name's matches sorted), so the same inputs always give the same data.
"""

from __future__ import annotations

import glob
import io
from pathlib import Path
from typing import BinaryIO

from launcher.errors import UserError

SHARDS = (".txt", ".jsonl", ".json", ".parquet", ".csv")
COMPRESSED = (".gz", ".zst")


def data_suffix(name: str) -> str:
    """The format suffix under any compression: `a.jsonl.zst` -> `.jsonl`."""
    path = Path(name)
    if path.suffix.lower() in COMPRESSED:
        path = path.with_suffix("")
    return path.suffix.lower()


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def expand(names: list[str], key: str) -> list[str]:
    out: list[str] = []
    for name in names:
        path = Path(name)
        if glob.has_magic(name):
            found = sorted(p for p in glob.glob(name, recursive=True) if Path(p).is_file() or is_saved_dataset(Path(p)))
            if not found:
                raise UserError(f"{key}: {name} matches no file")
            out += found
        elif path.is_dir() and not is_saved_dataset(path):
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and data_suffix(p.name) in SHARDS)
            if not found:
                raise UserError(f"{key}: directory {name} holds no shards ({', '.join(SHARDS)}, also .gz/.zst); "
                                "or give a datasets save_to_disk directory")
            out += found
        else:
            out.append(name)
    return out


def open_binary(file: str) -> BinaryIO:
    """The file's bytes, decompressed when it ends in .gz or .zst."""
    suffix = Path(file).suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(file, "rb")
    if suffix == ".zst":
        return io.BufferedReader(_Zstd(file))
    return open(file, "rb")


def compressed(file: str) -> bool:
    return Path(file).suffix.lower() in COMPRESSED


class _Zstd(io.RawIOBase):
    """Decompressed bytes of a .zst file, frame after frame; a file that ends inside a frame is an error
    (zstandard's own reader returns a short stream then, without a word)."""

    def __init__(self, file: str):
        import zstandard

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._file, self._object, self._pending = open(file, "rb"), self._new(), b""
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = self._file.read(1 << 20)
            if not chunk:
                if not self._object.eof and self._started:
                    raise ValueError("the file ends inside a zstd frame")
                return 0
            self._pending = self._decompress(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size

    def _decompress(self, data: bytes) -> bytes:
        out = b""
        while data:
            self._started = True
            out += self._object.decompress(data)
            data = self._object.unused_data if self._object.eof else b""
            if data:
                self._object = self._new()
        return out

    def close(self) -> None:
        self._file.close()
        super().close()
