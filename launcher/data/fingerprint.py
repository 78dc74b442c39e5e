"""Content hashes for cache keys: a changed file or setting gives a new key, so stale caches are never read.

Every byte of an input is hashed (sha256) once: the digest is kept in the cache (`digests/`) under the file's
path with its stamp (size, mtime_ns, ctime_ns), and read back while the stamp is unchanged. A rewritten file
changes its ctime whatever its size and mtime (nothing can set ctime back), so it is hashed again; an
unchanged one costs a stat and a small read, not a pass over its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from launcher.data.atomic import write_text_atomically
from launcher.data.sources import expand


def files_digest(names: list[str], cache: Path) -> str:
    """Of the files the names stand for (globs and shard directories expanded, save_to_disk directories by their
    files), each with its size."""
    return digest(*(shard_digest(name, cache) for name in expand(names, "data")))


def shard_digest(name: str, cache: Path) -> str:
    """Of one shard: a file, or every file of a save_to_disk directory."""
    path = Path(name)
    if not path.is_dir():
        return file_digest(name, cache)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return digest(*((str(p.relative_to(path)), file_digest(str(p), cache)) for p in files))


def file_digest(file: str, cache: Path) -> str:
    info = os.stat(file)
    stamp = [info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    path = Path(file).resolve()
    kept = cache / "digests" / f"{digest(str(path))}.json"
    try:
        entry = json.loads(kept.read_text())
        if entry["path"] == str(path) and entry["stamp"] == stamp:
            return entry["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    sha = hashlib.sha256(str(info.st_size).encode() + b"\0")
    with open(file, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    kept.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(kept, json.dumps({"path": str(path), "stamp": stamp, "sha256": sha.hexdigest()}))
    return sha.hexdigest()


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
