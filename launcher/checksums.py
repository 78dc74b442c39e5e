"""Checksums of a checkpoint's files: recorded in its COMPLETE marker when it is saved, checked by resume,
export and `llaunch checkpoints --verify`. No torch: the light CLI verifies too.

The marker is JSON: {"step": N, "files": {relative path: [bytes, crc32]}}. A marker without "files"
(written before checksums existed) makes the checkpoint unverifiable, not damaged. Each rank hashes the
files it wrote itself, right after writing them (their pages are still in memory): a file whose name
carries a rank (DCP's `__R_N.distcp`, `rng-rankR.pt`, DeepSpeed's `zero_pp_rank_R_...`) is rank R's,
every other file rank 0's. zlib's crc32 runs at about 3 GB/s on one core here.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

from launcher.checkpoints import BEST, MARKER

CHUNK = 4 << 20
Manifest = dict[str, list[int]]  # relative path -> [bytes, crc32]
_RANKED = re.compile(r"^__(\d+)_\d+\.distcp$|^rng-rank(\d+)\.pt$|^zero_pp_rank_(\d+)_")
_NOT_CONTENT = {MARKER, BEST}


def crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def crc32_bytes(data: bytes) -> int:
    return zlib.crc32(data)


def writer_rank(name: str) -> int:
    """The rank that wrote the file named `name` (0 for the files that carry no rank)."""
    m = _RANKED.match(name)
    return int(next(g for g in m.groups() if g is not None)) if m else 0


def content_files(path: Path) -> list[str]:
    """The checkpoint's files (relative paths, sorted), without its markers and half-written temporaries."""
    return sorted(str(f.relative_to(path)) for f in path.rglob("*")
                  if f.is_file() and f.name not in _NOT_CONTENT and not f.name.endswith(".tmp"))


def hash_files(path: Path, names: list[str]) -> Manifest:
    return {name: [(path / name).stat().st_size, crc32_file(path / name)] for name in names}


def own_files(path: Path, rank: int) -> Manifest:
    """What this rank wrote into the checkpoint, hashed."""
    return hash_files(path, [n for n in content_files(path) if writer_rank(Path(n).name) == rank])


def marker_text(step: int, files: Manifest) -> str:
    """The marker's text for a checkpoint of `step` with these files."""
    return json.dumps({"step": step, "files": dict(sorted(files.items()))}, indent=0) + "\n"


def recorded(path: Path) -> Manifest | None:
    """The checksums the marker records; None for a marker without them (an older llaunch wrote it)."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else None


def check(path: Path, names: list[str] | None = None) -> str | None:
    """The first file (of `names`, default all recorded) that does not read back as written, in words; None if all do."""
    files = recorded(path)
    if files is None:
        return None
    for name in sorted(files) if names is None else names:
        size, crc = files[name]
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        actual = file.stat().st_size
        if actual != size:
            return f"{name} has {actual} bytes, {size} were written"
        got = crc32_file(file)
        if got != crc:
            return f"{name} reads back with crc32 {got:08x}, {crc:08x} was written"
    return None
