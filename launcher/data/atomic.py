"""Files written whole or not at all: a temporary file named for this host and process, renamed over the path.
Array tasks on several hosts sharing the cache may write the same path at once; each rename is atomic, the
contents are equal, and the last one stays."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode()))
