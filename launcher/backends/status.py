"""What `llaunch status` and `llaunch ls` show about runs: read from the run dir, plus SLURM's word on its job.

No torch, no recipe validation (a run dir written by an older llaunch still shows).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from launcher.backends import slurm
from launcher.checkpoints import latest_complete
from launcher.errors import UserError
from launcher.rundir import RunDir

COLUMNS = (("run", "RUN"), ("state", "STATE"), ("job", "JOB"), ("nodes", "NODES"), ("step", "STEP"),
           ("loss", "LOSS"), ("checkpoint", "CHECKPOINT"), ("restarts", "RESTARTS"))


def find_runs(folder: str) -> list[RunDir]:
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{folder}: no such directory (runs live under output.dir, e.g. runs/)")
    found = [p for p in root.iterdir() if (p / "recipe.yaml").is_file()]
    return [RunDir(p.resolve()) for p in sorted(found, key=lambda p: p.stat().st_mtime)]


def last_train_row(run: RunDir) -> dict[str, Any] | None:
    """The newest `"kind": "train"` row of metrics.jsonl (reads only the file's tail)."""
    if not run.metrics.exists():
        return None
    with open(run.metrics, "rb") as handle:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
        lines = handle.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the first line of the tail may be cut, the last one half written
        if isinstance(row, dict) and row.get("kind") == "train":
            return row
    return None


def run_status(run: RunDir, ask_scheduler: bool = True) -> dict[str, Any]:
    recipe = yaml.safe_load(run.recipe_file.read_text()) or {}
    resources, max_steps = recipe.get("resources", {}), recipe.get("train", {}).get("max_steps")
    result = run.read_result() or {}
    row = last_train_row(run)
    newest = latest_complete(run.checkpoints)
    status: dict[str, Any] = {
        "run": str(run.path), "launcher": resources.get("launcher", "torchrun"), "job": None,
        "state": result.get("status", "unfinished").upper(), "reason": "",
        "nodes": resources.get("nodes", 1), "procs_per_node": resources.get("procs_per_node", 1),
        "step": row["step"] if row else 0, "max_steps": max_steps, "loss": row["loss"] if row else None,
        "checkpoint": newest[0] if newest else None, "restarts": 0, "result": result.get("status"),
    }
    jobs = slurm.job_ids(run)
    if jobs:
        status["job"] = jobs[-1]
        status["restarts"] = max(0, len(slurm.restart_logs(run, jobs[-1])) - 1)
        if ask_scheduler:
            job = slurm.query(jobs[-1])
            status["state"], status["reason"] = job.state, job.reason
        elif not result:
            status["state"] = "SUBMITTED"
    return status


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str) -> str:
        value = row[key]
        if key == "run":
            return _relative(value)
        if key == "state":
            return value + (f" ({row['reason']})" if row["reason"] else "")
        if key == "nodes":
            return f"{value}x{row['procs_per_node']}"
        if key == "step":
            return f"{value}/{row['max_steps']}"
        if key == "loss":
            return "-" if value is None else f"{value:.4f}"
        return "-" if value is None else str(value)

    cells = [[title for _, title in COLUMNS]] + [[cell(row, key) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
