"""The slurm tier: real jobs on a real cluster (bash slurm/local-cluster.sh start, as root).

Without a cluster these tests skip with the reason; in CI (CI set) they fail instead, so a broken
cluster start cannot turn the tier green.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from launcher.backends.slurm import TERMINAL
from tests.conftest import ROOT, llaunch

# a 2-node job of one CPU process per node, no evaluation, data prepared on the login node: the shape every
# slurm test submits (test_prepare_array asks for the preparation array job)
SHORT = ["--nodes", "2", "resources.procs_per_node=1", "resources.threads_per_proc=1", "slurm.profile=local",
         "eval.every=0", "eval.at_start=false", "slurm.prepare_tasks=0"]


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> None:
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%N %t"], capture_output=True, text=True, timeout=10)
        said = answer.stderr.strip().splitlines()
        reason = None if answer.returncode == 0 and answer.stdout.strip() else (said[-1] if said else "no nodes")
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    if reason:
        message = f"no SLURM cluster answers sinfo ({reason}); start one with: bash slurm/local-cluster.sh start"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def submit(*args: str, env: dict | None = None) -> Path:
    """`llaunch submit ...`; the run dir it created."""
    done = llaunch("submit", *args, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"^run dir: (.+)$", done.stdout, re.MULTILINE)
    assert found and "submitted job" in done.stdout, done.stdout
    return (ROOT / found.group(1)).resolve()


def status(run: Path) -> dict:
    done = llaunch("status", "--json", str(run))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def wait_until(run: Path, done, timeout: float, seen: list[str] | None = None) -> dict:
    """Poll `llaunch status` until done(row) holds; every state seen is appended to `seen`."""
    deadline = time.time() + timeout
    while True:
        row = status(run)
        if seen is not None and (not seen or seen[-1] != row["state"]):
            seen.append(row["state"])
        if done(row):
            return row
        assert time.time() < deadline, f"timed out after {timeout} s; states seen {seen}; last {row}"
        time.sleep(1)


def finished(row: dict) -> bool:
    return row["state"] in TERMINAL


def train_steps(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["step"] for row in rows if row["kind"] == "train"]


def signal_workers(job: str, node: str, signal: int) -> list[int]:
    """Send `signal` to the training workers (not their torchrun) of SLURM job `job` on node `node`; their pids.
    The local cluster's nodes share this host: a process's node is its SLURMD_NODENAME."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            env = dict(item.split("=", 1) for item in (proc / "environ").read_text().split("\0") if "=" in item)
        except (OSError, ValueError):
            continue
        if env.get("SLURM_JOB_ID") == job and env.get("SLURMD_NODENAME") == node and "LOCAL_RANK" in env:
            os.kill(int(proc.name), signal)
            pids.append(int(proc.name))
    assert pids, f"no worker of job {job} on {node}"
    return pids
