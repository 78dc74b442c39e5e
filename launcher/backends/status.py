"""What `llaunch status` and `llaunch ls` show about runs: read from the run dir, plus SLURM's word on its job.

No torch, no recipe validation (a run dir written by an older llaunch still shows).
"""

from __future__ import annotations

from typing import Any

from launcher.backends.base import backend_for
from launcher.backends.restarts import read_restarts
from launcher.checkpoints import latest_complete
from launcher.rundir import RunDir, display_path

COLUMNS = (("run", "RUN"), ("state", "STATE"), ("job", "JOB"), ("nodes", "NODES"), ("step", "STEP"),
           ("loss", "LOSS"), ("checkpoint", "CHECKPOINT"), ("restarts", "RESTARTS"))


def run_status(run: RunDir, ask_scheduler: bool = True) -> dict[str, Any]:
    recipe = run.raw_recipe()
    resources, max_steps = recipe.get("resources", {}), recipe.get("train", {}).get("max_steps")
    result = run.read_result()
    row = run.last_train_row()
    newest = latest_complete(run.checkpoints)
    state = backend_for(run).status(run, ask_scheduler)
    return {
        "run": str(run.path), "launcher": resources.get("launcher", "torchrun"), "job": state.job,
        "state": state.state, "reason": state.reason,
        "nodes": resources.get("nodes", 1), "procs_per_node": resources.get("procs_per_node", 1),
        "step": row["step"] if row else 0, "max_steps": max_steps, "loss": row["loss"] if row else None,
        "mfu": row.get("mfu") if row else None,
        "slow_ranks": row.get("slow_ranks") if row else None,  # [{rank, host, forward_seconds, median_seconds}]
        # a weighted mixture's samples and tokens read from each source, {source: count}
        "consumed_by_source": row.get("consumed_by_source") if row else None,
        "tokens_by_source": row.get("tokens_by_source") if row else None,
        "checkpoint": newest[0] if newest else None, "restarts": state.restarts,
        # each automatic restart of a SLURM job: {job, start, cause (preempted, hang at step N on rank R,
        # node X lost, worker exit code N, ended by SLURM (...)), exclude, next_job}
        "restart_causes": [row["cause"] for row in read_restarts(run)],
        "prepare": state.prepare,  # the array job that prepares the data first (SLURM): {job, state, tasks, failed}
        "result": result.status if result else None,
    }


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str) -> str:
        value = row[key]
        if key == "run":
            return display_path(value)
        if key == "state":
            return value + (f" ({row['reason']})" if row["reason"] else "")
        if key == "nodes":
            return f"{value}x{row['procs_per_node']}"
        if key == "step":
            return f"{value}/{row['max_steps']}"
        if key == "loss":
            return "-" if value is None else f"{value:.4f}"
        if key == "mfu":
            return "-" if value is None else f"{value:.1%}"
        if key == "restarts" and row["restart_causes"]:
            return f"{value} ({'; '.join(row['restart_causes'])})"
        if key == "prepare" and value:
            failed = "; ".join(f"task {f['task']} {f['state']}" + (f": {f['error']}" if f["error"] else "")
                               for f in value["failed"])
            return f"{value['job']} {value['state']}" + (f" ({failed})" if failed else "")
        if key == "slow_ranks":
            return ", ".join(f"rank {s['rank']} on {s['host']} ({s['forward_seconds'] / s['median_seconds']:.1f}x)"
                             for s in value or []) or "-"
        return "-" if value is None else str(value)

    columns = COLUMNS
    if any(row.get("mfu") is not None for row in rows):  # a GPU run (or logging.peak_tflops): MFU after the loss
        at = [key for key, _ in COLUMNS].index("loss") + 1
        columns = COLUMNS[:at] + (("mfu", "MFU"),) + COLUMNS[at:]
    if any(row.get("prepare") for row in rows):  # an array job prepared the data (or could not)
        columns = columns + (("prepare", "PREPARE"),)
    if any(row.get("slow_ranks") for row in rows):  # a node to drain: named last, where the line has room
        columns = columns + (("slow_ranks", "SLOW"),)
    cells = [[title for _, title in columns]] + [[cell(row, key) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)

