"""Why a SLURM job's start ended, and what the job script does next: `python -m launcher.backends.restarts`.

The job script calls `begin` when a start begins and `end` when its workers have ended; `end` prints what
happened into the job's log and exits with the job's exit code. Each automatic restart is a line of
RUN_DIR/restarts.jsonl ({job, start, cause, exclude?, next_job?}), which is also the count that
slurm.max_requeues bounds and what `llaunch status` shows. Causes:
- preempted: the batch shell got USR2 (the time limit, or scancel --signal=USR2 --batch); the workers
  checkpointed -> `scontrol requeue`;
- hang at step N on rank R: result.json holds the watchdog's exit code 3; the hung rank is the one that
  wrote no stacks (stopped, or stuck outside Python), else the one that saw its step overrun -> requeue;
- node X lost: srun names a node whose task failed while none of that node's workers said why (SIGKILL,
  the OOM killer, a crash of the machine) -> a new job of the same script with `--exclude` of the lost
  nodes where the partition has enough other nodes (SLURM can change the nodes of a pending job only,
  and `scontrol requeue` ends this script at once), else `scontrol requeue`;
- worker exit code N: the workers died without a result -> requeue;
- ended by SLURM (node failure, ...): a start that never reached `end` because SLURM ended the job and
  requeued it itself (a node set DOWN: `node X lost (ended by SLURM (node failure))`), found by the next
  start's `begin`; SLURM places the requeued job on nodes that are up.
A recorded failure of the run itself (bad data, an exception in a step) is not retried: it would fail again.
Imports no torch: it runs with the batch shell's python (and imports pydantic only to record a resubmitted job).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from launcher.rundir import Result, RunDir

RESTARTS_FILE = "restarts.jsonl"
HANG_EXIT_CODE = 3  # launcher/train/watchdog.py's (that module imports torch's side of the tree)
SRUN_FAILED = re.compile(r"^srun: error: (\S+): tasks? ([\d,-]+): ", re.MULTILINE)
SRUN_ENDS_OTHERS = "_step_signal: Terminating"  # srun's line when a failed task makes it end the rest
SLURM_ENDED = re.compile(r"\*\*\* JOB \d+ ON \S+ CANCELLED AT \S+ DUE TO ([A-Z ]+?)(?:,| \*\*\*)")
NODE_FAILURE = re.compile(r"^srun: error: Node failure on (\S+)", re.MULTILINE)


def restarts_file(run: RunDir) -> Path:
    return run.path / RESTARTS_FILE


def read_restarts(run: RunDir) -> list[dict]:
    path = restarts_file(run)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a node that died while writing it
    return rows


def _record(run: RunDir, row: dict) -> None:
    with open(restarts_file(run), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def chain(rows: list[dict], job: str) -> list[dict]:
    """The restarts that led to `job` since llaunch last submitted: its own requeues, and those of the jobs
    that resubmitted themselves into it."""
    mine = [row for row in rows if row["job"] == job]
    parent = next((row for row in rows if row.get("next_job") == job), None)
    return (chain(rows, parent["job"]) if parent else []) + mine


def _marker(job: str, start: int) -> str:
    return f"llaunch: job {job} start {start} on "


def _this_start(text: str, job: str, start: int) -> str:
    """What the batch log holds since this start began."""
    at = text.rfind(_marker(job, start))
    return text[at:] if at >= 0 else ""


def begin(run: RunDir, job: str, start: int) -> None:
    """Record the starts of this job that ended without reaching `end` (SLURM requeued the job itself)."""
    known = {row["start"] for row in read_restarts(run) if row["job"] == job}
    log = _read(run.logs / f"slurm-{job}.out")
    for earlier in range(start):
        if earlier not in known:
            text = _this_start(log, job, earlier)
            said, nodes = SLURM_ENDED.search(text), sorted(set(NODE_FAILURE.findall(text)))
            cause = f"ended by SLURM ({said.group(1).lower()})" if said else "ended by SLURM"
            if nodes:
                cause = f"node {', '.join(nodes)} lost ({cause})"
            _record(run, {"job": job, "start": earlier, "cause": cause})


def lost_nodes(batch_log: str, worker_log: str) -> list[str]:
    """Nodes srun reports failed, before it ended the others (--kill-on-bad-exit), whose workers printed no
    error of their own: they died without a word."""
    said = {int(task) for task in re.findall(r"^(\d+): error: ", worker_log, re.MULTILINE)}
    first = batch_log.split(SRUN_ENDS_OTHERS)[0]
    lost = []
    for node, tasks in SRUN_FAILED.findall(first):
        numbers = {int(n) for part in tasks.split(",") for n in _span(part)}
        if not numbers & said and node not in lost:
            lost.append(node)
    return lost


def _span(part: str) -> range:
    first, _, last = part.partition("-")
    return range(int(first), int(last or first) + 1)


def hung_ranks(run: RunDir, result: Result, world_size: int) -> list[int]:
    """The ranks that wrote no stacks for the hung step; if all did, the one that saw its step overrun."""
    wrote = {int(m.group(1)) for p in run.logs.glob(f"hang-step-{result.step}-rank-*.txt")
             if (m := re.search(r"-rank-(\d+)\.txt$", p.name))}
    silent = [rank for rank in range(world_size) if rank not in wrote]
    if silent and wrote:
        return silent
    named = re.search(r" on rank (\d+) ", result.error or "")
    return [int(named.group(1))] if named else []


def cause(run: RunDir, job: str, start: int, stopped: bool, code: int) -> tuple[str | None, list[str]]:
    """(why this start ended, if a restart can help; the nodes to avoid), or (None, []) for no restart."""
    result = run.read_result()
    if result is not None and result.status == "completed":
        return None, []
    if stopped and (result is None or result.status == "interrupted"):
        return "preempted", []
    if result is not None and result.exit_code == HANG_EXIT_CODE:
        resources = run.raw_recipe().get("resources", {})
        ranks = hung_ranks(run, result, resources.get("nodes", 1) * resources.get("procs_per_node", 1))
        on = f" on rank {', '.join(map(str, ranks))}" if ranks else ""
        return f"hang at step {result.step}{on}", []
    lost = lost_nodes(_this_start(_read(run.logs / f"slurm-{job}.out"), job, start),
                      _read(run.logs / f"slurm-{job}-restart-{start}.out"))
    if lost and (result is None or result.exit_code == 1):
        return f"node {', '.join(lost)} lost", lost
    if result is None and code:
        return f"worker exit code {code}", []
    return None, []


def end(run: RunDir, job: str, start: int, stopped: bool, code: int, max_requeues: int) -> int:
    """Print what happened, restart the run if that can help, and return the job's exit code."""
    result = run.read_result()
    why, lost = cause(run, job, start, stopped, code)
    worker_log = f"logs/slurm-{job}-restart-{start}.out"
    if why is None:
        if result is not None and result.status == "completed":
            print("llaunch: run completed")
            return 0
        if result is not None and result.status == "failed":
            print(f"llaunch: run failed (see {worker_log})")
            return result.exit_status
        print(f"llaunch: workers exited with code {code} (see {worker_log})")
        return code or 1
    rows = read_restarts(run)
    done = len(chain(rows, job))
    if done >= max_requeues:
        print(f"llaunch: {why}; stopped after {done} requeue(s) (slurm.max_requeues); continue with: "
              f"llaunch resume {run.path}")
        return result.exit_status if result is not None and result.status == "failed" else code or 1
    print(f"llaunch: {why}; requeueing (restart {done + 1} of at most {max_requeues})", flush=True)
    avoid = sorted({*lost, *(n for row in chain(rows, job) for n in row.get("exclude", []))})
    row = {"job": job, "start": start, "cause": why}
    if lost and _enough_nodes_without(avoid):
        new_job = _resubmit(run, avoid)
        if new_job:
            print(f"llaunch: submitted job {new_job} excluding {','.join(avoid)}")
            _record(run, {**row, "exclude": avoid, "next_job": new_job})
            _record_job(run, new_job)
            return 0
    _record(run, row)
    done_requeue = subprocess.run(["scontrol", "requeue", job])
    return 0 if done_requeue.returncode == 0 else 1


def _enough_nodes_without(avoid: list[str]) -> bool:
    """Does the job's partition have as many usable nodes besides `avoid` as the job runs on?"""
    partition = os.environ.get("SLURM_JOB_PARTITION", "")
    answer = subprocess.run(["sinfo", "-h", "-N", "-p", partition, "-o", "%N %t"], capture_output=True, text=True)
    usable = {node for node, state in (line.split()[:2] for line in answer.stdout.splitlines() if line.strip())
              if not state.rstrip("*~#!%$@^-").startswith(("down", "drain", "fail", "maint", "inval"))}
    return len(usable - set(avoid)) >= int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))


def _resubmit(run: RunDir, avoid: list[str]) -> str | None:
    """The same job script as a new job without `avoid`: its id, None if sbatch refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    done = subprocess.run(["sbatch", "--parsable", f"--exclude={','.join(avoid)}", str(run.path / "job.sbatch")],
                          capture_output=True, text=True, env=env, cwd=run.path)
    job = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not job.isdigit():
        print(f"llaunch: sbatch --exclude refused ({(done.stderr or done.stdout).strip()}); requeueing instead")
        return None
    return job


def _record_job(run: RunDir, job: str) -> None:
    from launcher.backends.slurm import record_job  # the one writer of slurm.json

    record_job(run, job)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def main(argv: list[str]) -> int:
    """`begin RUN_DIR JOB START` or `end RUN_DIR JOB START STOPPED CODE MAX_REQUEUES`."""
    what, run, job, start = argv[0], RunDir(Path(argv[1])), argv[2], int(argv[3])
    if what == "begin":
        begin(run, job, start)
        return 0
    return end(run, job, start, argv[4] == "1", int(argv[5]), int(argv[6]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
