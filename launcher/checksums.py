"""Checksums of a checkpoint's files: recorded in its COMPLETE marker when it is saved, checked by resume,
export and `llaunch checkpoints --verify`. No torch: the light CLI verifies too.

The marker is JSON: {"step": N, "hash": "xxh3_64", "files": {relative path: [bytes, hash]}}. A marker
without "files" (written before checksums existed) makes the checkpoint unverifiable, not damaged; one
without "hash" holds crc32s (llaunch wrote those before xxh3). Each rank hashes the files it wrote itself,
right after writing them (their pages are still in memory): a file whose name carries a rank (DCP's
`__R_N.distcp`, `rng-rankR.pt`, DeepSpeed's `zero_pp_rank_R_...`) is rank R's, every other file rank 0's.
xxh3-64 (the xxhash package, which `datasets` already requires) runs at about 17 GB/s on one core here,
zlib's crc32 at 3.7: the hash pass went from 11% of a save to about 3%.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import xxhash

from launcher.checkpoints import BEST, MARKER

CHUNK = 4 << 20
HASH = "xxh3_64"  # what new markers record; "crc32" in markers without a "hash" key
Manifest = dict[str, list[int]]  # relative path -> [bytes, hash]
_RANKED = re.compile(r"^__(\d+)_\d+\.distcp$|^rng-rank(\d+)\.pt$|^zero_pp_rank_(\d+)_")
_NOT_CONTENT = {MARKER, BEST}


def hash_file(path: Path, algorithm: str = HASH) -> int:
    if algorithm == "crc32":
        crc = 0
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(CHUNK):
                crc = zlib.crc32(chunk, crc)
        return crc
    hasher = xxhash.xxh3_64()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.intdigest()


def hash_bytes(data: bytes) -> int:
    return xxhash.xxh3_64_intdigest(data)


def writer_rank(name: str) -> int:
    """The rank that wrote the file named `name` (0 for the files that carry no rank)."""
    m = _RANKED.match(name)
    return int(next(g for g in m.groups() if g is not None)) if m else 0


def content_files(path: Path) -> list[str]:
    """The checkpoint's files (relative paths, sorted), without its markers and half-written temporaries."""
    return sorted(str(f.relative_to(path)) for f in path.rglob("*")
                  if f.is_file() and f.name not in _NOT_CONTENT and not f.name.endswith(".tmp"))


def hash_files(path: Path, names: list[str]) -> Manifest:
    return {name: [(path / name).stat().st_size, hash_file(path / name)] for name in names}


def own_files(path: Path, rank: int) -> Manifest:
    """What this rank wrote into the checkpoint, hashed."""
    return hash_files(path, [n for n in content_files(path) if writer_rank(Path(n).name) == rank])


def marker_text(step: int, files: Manifest) -> str:
    """The marker's text for a checkpoint of `step` with these files."""
    return json.dumps({"step": step, "hash": HASH, "files": dict(sorted(files.items()))}, indent=0) + "\n"


def recorded(path: Path) -> Manifest | None:
    """The checksums the marker records; None for a marker without them (an older llaunch wrote it)."""
    return _marker(path)[0]


def _marker(path: Path) -> tuple[Manifest | None, str]:
    """(files, hash algorithm) of the marker."""
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None, HASH
    files = data.get("files") if isinstance(data, dict) else None
    return (files, data.get("hash", "crc32")) if isinstance(files, dict) else (None, HASH)


def check(path: Path, names: list[str] | None = None) -> str | None:
    """The first file (of `names`, default all recorded) that does not read back as written, in words; None if all do."""
    files, algorithm = _marker(path)
    if files is None:
        return None
    for name in sorted(files) if names is None else names:
        size, want = files[name]
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        actual = file.stat().st_size
        if actual != size:
            return f"{name} has {actual} bytes, {size} were written"
        got = hash_file(file, algorithm)
        if got != want:
            return f"{name} reads back with {algorithm} {got:x}, {want:x} was written"
    return None
