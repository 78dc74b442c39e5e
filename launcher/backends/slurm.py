"""The SLURM backend: sbatch, a job's state (squeue, then sacct, then scontrol), its logs, scancel. No torch.

The run dir records its job ids (slurm.json, newest last): a requeued job keeps its id, a resubmitted
run (`llaunch resume`, or the job script avoiding a lost node) gets a new one; restarts.jsonl says why
each automatic restart happened (launcher.backends.restarts). Data that `submit` finds unprepared is
prepared by an array job (slurm.prepare_tasks, prepare.sbatch) that the training job waits for; slurm.json
records its id ("prepare"), and status names the task that failed and why, from its log. Clusters without accounting answer sacct with an error; then
`scontrol show job` still knows finished jobs for MinJobAge seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from launcher.backends.base import Backend, RunState
from launcher.backends.restarts import read_restarts
from launcher.data import cache_index
from launcher.data.shards import train_eval_shards
from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan
from launcher.plan.profiles import resolve_slurm
from launcher.plan.slurm import PREPARE_JOB, PREPARE_SCRIPT, with_prepare_array
from launcher.recipe.schema import Recipe
from launcher.rundir import RunDir, display_path, write_text_atomic

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}


@dataclass(frozen=True)
class JobState:
    state: str  # SLURM's word: PENDING, RUNNING, REQUEUED, COMPLETED, FAILED, CANCELLED, ... or UNKNOWN
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


def _call(argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess | None:
    """Run a SLURM client command; None if it is not installed or does not answer in time."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None


class SlurmBackend(Backend):
    queued = True

    def dryrun(self, recipe: Recipe, run_dir: str) -> LaunchPlan:
        plan = super().dryrun(recipe, run_dir)
        tasks = prepare_tasks(recipe)
        return with_prepare_array(plan, recipe, sys.executable, resolve_slurm(recipe.slurm), tasks) if tasks else plan

    def check_here(self) -> None:
        if not shutil.which("sbatch"):
            raise UserError("sbatch not found: llaunch submit runs on a SLURM login node "
                            "(llaunch plan --on slurm shows the job script)")

    def launch(self, run: RunDir, plan: LaunchPlan) -> None:
        rel = display_path(run.path)
        train = plan.commands[-1].argv
        if PREPARE_SCRIPT in plan.files:
            prepare = submit(plan.commands[0].argv)
            _write_jobs(run, {"jobs": [], "prepare": prepare})
            print(f"submitted array job {prepare} to prepare the data (logs/prepare-{prepare}-TASK.out); "
                  "the training job starts when every task has succeeded")
            try:
                job = submit(tuple(arg.replace(PREPARE_JOB, prepare) for arg in train))
            except UserError:
                cancel(prepare)
                raise
        else:
            job = submit(train)
        record_job(run, job)
        print(f"run dir: {rel}")
        print(f"submitted job {job} ({plan.nodes} node(s) x {plan.procs_per_node} process(es)); "
              f"follow it with: llaunch status {rel}; llaunch logs -f {rel}")

    def status(self, run: RunDir, ask_scheduler: bool = True) -> RunState:
        jobs = job_ids(run)
        if not jobs:
            return super().status(run)
        restarts = len(read_restarts(run))
        if ask_scheduler:
            job = query(jobs[-1])
            live = not job.finished and job.state != "UNKNOWN"
            return RunState(job.state, jobs[-1], job.reason, restarts, finished=job.finished, queued=live,
                            prepare=prepare_status(run))
        ended = super().status(run)
        state = ended.state if ended.finished else "SUBMITTED"
        return RunState(state, jobs[-1], restarts=restarts, finished=ended.finished)

    def log_files(self, run: RunDir) -> list[Path]:
        """Per job, the batch script's log then each start's worker output."""
        jobs = job_ids(run)
        if not jobs:
            return super().log_files(run)
        files: list[Path] = []
        for job in jobs:
            batch = run.logs / f"slurm-{job}.out"
            files += ([batch] if batch.exists() else []) + restart_logs(run, job)
        return files

    def cancel(self, run: RunDir) -> str:
        jobs = job_ids(run)
        if not jobs:
            return super().cancel(run)
        prepare = _read_jobs(run).get("prepare")
        if prepare and array_state(prepare)[0] in ("PENDING", "RUNNING"):
            cancel(prepare)
            cancel(jobs[-1])
            return f"cancelled the preparation array job {prepare} and job {jobs[-1]} ({run.path})"
        cancel(jobs[-1])
        return f"cancelled job {jobs[-1]} ({run.path})"


def prepare_tasks(recipe: Recipe) -> int:
    """Tasks of the array job that prepares the recipe's data (one shard at least each): 0 when the data is
    prepared already or slurm.prepare_tasks is 0 (then it is prepared on the login node, or by the workers)."""
    wanted = resolve_slurm(recipe.slurm).prepare_tasks
    if not wanted or cache_index.lookup(recipe) is not None:
        return 0
    return min(wanted, len(train_eval_shards(recipe)))


def submit(argv: tuple[str, ...]) -> str:
    """sbatch a script; the job id."""
    done = _call(list(argv), timeout=60)
    if done is None:
        raise UserError("sbatch not found or not answering: llaunch submit needs a SLURM login node "
                        "(llaunch plan --on slurm shows the script)")
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise UserError(f"sbatch refused the job: {lines[-1]}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise UserError(f"sbatch answered {done.stdout.strip()!r}, expected a job id")
    return job_id


def record_job(run: RunDir, job_id: str) -> None:
    recorded = _read_jobs(run)
    _write_jobs(run, {**recorded, "jobs": [*recorded.get("jobs", []), job_id]})


def job_ids(run: RunDir) -> list[str]:
    return _read_jobs(run).get("jobs", [])


def _read_jobs(run: RunDir) -> dict:
    return json.loads(run.jobs_file.read_text()) if run.jobs_file.exists() else {}


def _write_jobs(run: RunDir, recorded: dict) -> None:
    write_text_atomic(run.jobs_file, json.dumps(recorded, indent=1) + "\n")


def array_state(job_id: str) -> tuple[str, dict[int, str]]:
    """An array job's state (FAILED if a task failed, else PENDING/RUNNING while one waits or runs, else
    COMPLETED; UNKNOWN if SLURM has forgotten it) and each task's state, from `scontrol show job`."""
    done = _call(["scontrol", "show", "job", "-o", job_id])
    tasks: dict[int, str] = {}
    for line in (done.stdout.splitlines() if done is not None and done.returncode == 0 else []):
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        for part in re.findall(r"\d+(?:-\d+)?", fields.get("ArrayTaskId", "").split("%")[0]):
            first, _, last = part.partition("-")
            tasks.update(dict.fromkeys(range(int(first), int(last or first) + 1), fields.get("JobState", "UNKNOWN")))
    states = set(tasks.values())
    for state in ("FAILED", "OUT_OF_MEMORY", "TIMEOUT", "CANCELLED", "NODE_FAIL", "RUNNING", "PENDING"):
        if state in states:
            return state, tasks
    return ("COMPLETED" if states == {"COMPLETED"} else "UNKNOWN"), tasks


def prepare_status(run: RunDir) -> dict | None:
    """The preparation array job: {job, state, failed: [{task, error}]}; the error is the task log's `error:` line."""
    job = _read_jobs(run).get("prepare")
    if not job:
        return None
    state, tasks = array_state(job)
    failed = []
    for task in sorted(t for t, s in tasks.items() if s not in ("COMPLETED", "PENDING", "RUNNING")):
        log = run.logs / f"prepare-{job}-{task}.out"
        said = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")] \
            if log.exists() else []
        failed.append({"task": task, "state": tasks[task], "error": said[-1].removeprefix("error: ") if said else ""})
    return {"job": job, "state": state, "tasks": len(tasks), "failed": failed}


def query(job_id: str) -> JobState:
    """The job's state from squeue, else sacct (needs accounting), else scontrol."""
    done = _call(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r"])
    if done is not None and done.returncode == 0 and done.stdout.strip():
        state, reason = (done.stdout.strip().splitlines()[0].split("|") + [""])[:2]
        return JobState(state, "" if reason == "None" else reason)
    done = _call(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"])
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return JobState(done.stdout.strip().splitlines()[-1].split()[0])  # "CANCELLED by 0" -> CANCELLED
    done = _call(["scontrol", "show", "job", "-o", job_id])
    if done is not None and done.returncode == 0 and done.stdout.strip():
        fields = dict(re.findall(r"(\w+)=(\S*)", done.stdout))
        reason = fields.get("Reason", "")
        return JobState(fields.get("JobState", "UNKNOWN"), "" if reason == "None" else reason)
    return JobState("UNKNOWN")


def cancel(job_id: str) -> None:
    done = _call(["scancel", job_id])
    if done is None or done.returncode != 0:
        why = "scancel not found" if done is None else (done.stderr.strip() or f"exit code {done.returncode}")
        raise UserError(f"could not cancel job {job_id}: {why}")


def restart_logs(run: RunDir, job_id: str) -> list[Path]:
    """The worker output of each start of the job (the script writes one file per start), in order."""
    found = [(int(m.group(1)), p) for p in run.logs.glob(f"slurm-{job_id}-restart-*.out")
             if (m := re.search(r"-restart-(\d+)\.out$", p.name))]
    return [p for _, p in sorted(found)]
