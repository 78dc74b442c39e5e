"""`llaunch logs`: a run's output files in order, and following them while the run goes on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from launcher.backends.base import backend_for
from launcher.rundir import RunDir


def show(run: RunDir, follow: bool, poll: float = 1.0) -> None:
    """Print every log file with a header; with follow, keep printing what is appended (and new files)
    until the run has finished and nothing more arrives."""
    backend = backend_for(run)
    out = sys.stdout
    offsets: dict[Path, int] = {}

    def drain() -> bool:
        grew = False
        for path in backend.log_files(run):
            data = path.read_bytes()[offsets.get(path, 0):]
            if path not in offsets:
                out.write(f"==> {path.relative_to(run.path)} <==\n")
            offsets[path] = offsets.get(path, 0) + len(data)
            if data:
                out.write(data.decode("utf-8", "replace"))
                grew = True
        out.flush()
        return grew

    drain()
    while follow:
        finished = backend.status(run).finished
        time.sleep(poll)
        if not drain() and finished:
            return
