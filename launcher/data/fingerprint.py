"""Content hashes for cache keys: a changed file or setting gives a new key, so stale caches are never read."""

from __future__ import annotations

import hashlib
from pathlib import Path

from launcher.data.sources import expand


def files_digest(names: list[str]) -> str:
    """Of every byte of the files the names stand for (globs and shard directories expanded, the files of a
    save_to_disk directory included), each with its size."""
    sha = hashlib.sha256()
    for path in _files(names):
        sha.update(str(Path(path).stat().st_size).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
    return sha.hexdigest()


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _files(names: list[str]) -> list[str]:
    out = []
    for name in expand(names, "data"):
        path = Path(name)
        out += sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.is_dir() else [name]
    return out
