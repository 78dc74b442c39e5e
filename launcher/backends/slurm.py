"""The SLURM backend: sbatch, a job's state (squeue, then sacct, then scontrol), its logs, scancel. No torch.

The run dir records its job ids (slurm.json, newest last): a requeued job keeps its id, a resubmitted
run (`llaunch resume`, or the job script avoiding a lost node) gets a new one; restarts.jsonl says why
each automatic restart happened (launcher.backends.restarts). Clusters without accounting answer sacct with an error; then
`scontrol show job` still knows finished jobs for MinJobAge seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from launcher.backends.base import Backend, RunState
from launcher.backends.restarts import read_restarts
from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan
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

    def check_here(self) -> None:
        if not shutil.which("sbatch"):
            raise UserError("sbatch not found: llaunch submit runs on a SLURM login node "
                            "(llaunch plan --on slurm shows the job script)")

    def launch(self, run: RunDir, plan: LaunchPlan) -> None:
        job = submit(plan)
        record_job(run, job)
        rel = display_path(run.path)
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
            return RunState(job.state, jobs[-1], job.reason, restarts, finished=job.finished, queued=live)
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
        cancel(jobs[-1])
        return f"cancelled job {jobs[-1]} ({run.path})"


def submit(plan: LaunchPlan) -> str:
    """sbatch the plan's script; the job id."""
    done = _call(list(plan.commands[0].argv), timeout=60)
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
    jobs = [*job_ids(run), job_id]
    write_text_atomic(run.jobs_file, json.dumps({"jobs": jobs}, indent=1) + "\n")


def job_ids(run: RunDir) -> list[str]:
    return json.loads(run.jobs_file.read_text())["jobs"] if run.jobs_file.exists() else []


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
