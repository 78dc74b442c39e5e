"""Content hashes for cache keys: a changed file or setting gives a new key, so stale caches are never read."""

from __future__ import annotations

import hashlib
from pathlib import Path


def files_digest(paths: list[str]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(str(Path(path).stat().st_size).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
    return sha.hexdigest()


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
