"""`llaunch logs`: a run's output files in order, and following them while the run goes on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from launcher.backends import slurm
from launcher.rundir import RunDir


def log_files(run: RunDir) -> list[Path]:
    """SLURM runs: per job, the batch script's log then each start's worker output; else the rank logs."""
    jobs = slurm.job_ids(run)
    if not jobs:
        return sorted(run.logs.glob("rank-*.log"), key=lambda p: int(p.stem.split("-")[1]))
    files: list[Path] = []
    for job in jobs:
        batch = run.logs / f"slurm-{job}.out"
        files += ([batch] if batch.exists() else []) + slurm.restart_logs(run, job)
    return files


def _finished(run: RunDir) -> bool:
    jobs = slurm.job_ids(run)
    return slurm.query(jobs[-1]).finished if jobs else run.result_file.exists()


def show(run: RunDir, follow: bool, out=sys.stdout, poll: float = 1.0) -> None:
    """Print every log file with a header; with follow, keep printing what is appended (and new files)
    until the run has finished and nothing more arrives."""
    offsets: dict[Path, int] = {}

    def drain() -> bool:
        grew = False
        for path in log_files(run):
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
        finished = _finished(run)
        time.sleep(poll)
        if not drain() and finished:
            return
