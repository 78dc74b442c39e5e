"""Real jobs on the local cluster: two nodes train together, preemption requeues and resumes, status/logs/cancel."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import QUICKSTART, llaunch
from tests.slurm.conftest import SHORT, finished, status, submit, train_steps, wait_until

pytestmark = pytest.mark.slurm

EVIL = "it's $(touch PWNED) `touch PWNED` \"q\" #c"
SECRET = "hf_not_a_real_token_81f3c2"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_two_nodes_train_together_and_export(tmp_path, cache, monkeypatch):
    # hostile values in the output dir and an #SBATCH option: they reach sbatch and the job as plain data
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(yaml.safe_dump({"extends": str(QUICKSTART), "slurm": {"extra_sbatch": [f"--comment={EVIL}"]}}))
    monkeypatch.setenv("HF_TOKEN", SECRET)  # passed to the job by name (--export=ALL), never written
    out = tmp_path / f"runs {EVIL}"
    run = submit(str(recipe), *SHORT, f"output.dir={out}", f"output.cache_dir={cache}", "train.max_steps=20",
                 "checkpoint.every=10")
    seen: list[str] = []
    row = wait_until(run, finished, 240, seen)
    assert row["state"] == "COMPLETED", (seen, llaunch("logs", str(run)).stdout[-3000:])
    assert row["step"] == 20 and row["checkpoint"] == 20 and row["restarts"] == 0
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    newest = run / "checkpoints" / "step-000020"
    assert (newest / "COMPLETE").is_file() and len(list(newest.glob("*.distcp"))) == 2  # one shard per node
    assert (run / "export" / "model.safetensors").is_file()

    job = subprocess.run(["scontrol", "show", "job", row["job"]], capture_output=True, text=True).stdout
    assert f"WorkDir={run}" in job and f"Comment={EVIL}" in job and "NodeList=node[1-2]" in job
    assert not list(tmp_path.rglob("PWNED"))
    leaked = [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked
    assert sorted(p.name for p in (run / "logs").glob("rank-*.log")) == ["rank-0.log", "rank-1.log"]


def test_preemption_checkpoints_requeues_and_resumes(tmp_path, cache):
    run = submit(str(QUICKSTART), *SHORT, f"output.dir={tmp_path}", f"output.cache_dir={cache}",
                 "train.max_steps=40", "checkpoint.every=10", "train.log_every=5", "--no-prepare")
    job = status(run)["job"]
    row = wait_until(run, lambda r: r["step"] >= 5 or finished(r), 180)
    assert not finished(row), (row, llaunch("logs", str(run)).stdout[-3000:])
    subprocess.run(["scancel", "--signal=USR2", "--batch", job], check=True)  # what SLURM sends before the limit
    seen: list[str] = []
    row = wait_until(run, finished, 240, seen)
    logs = llaunch("logs", str(run)).stdout
    assert row["state"] == "COMPLETED" and row["step"] == 40 and row["restarts"] >= 1, (seen, logs[-3000:])
    assert "requeueing (restart 1 of at most 2)" in logs
    assert seen[0] == "RUNNING" and {"REQUEUED", "PENDING"} & set(seen) and seen[-1] == "COMPLETED", seen
    stopped = int(re.search(r"stopped on request at step (\d+)", logs).group(1))
    assert f"resumed from {run}/checkpoints/step-{stopped:06d}" in logs
    steps = train_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 40, steps  # nothing before the checkpoint ran twice
    assert json.loads((run / "result.json").read_text())["status"] == "completed"


def test_status_logs_and_cancel(tmp_path, cache):
    run = submit(str(QUICKSTART), *SHORT, f"output.dir={tmp_path}", f"output.cache_dir={cache}",
                 "train.max_steps=100000", "--no-prepare")
    seen: list[str] = []
    wait_until(run, lambda r: r["state"] == "RUNNING", 60, seen)
    assert set(seen) <= {"PENDING", "RUNNING"}, seen
    logs = llaunch("logs", str(run))
    assert logs.returncode == 0 and f"llaunch: job {status(run)['job']} start 0 on node[1-2]" in logs.stdout

    table = llaunch("status", str(run)).stdout.splitlines()
    assert table[0].split() == ["RUN", "STATE", "JOB", "NODES", "STEP", "LOSS", "CHECKPOINT", "RESTARTS"]
    assert "RUNNING" in table[1] and "2x1" in table[1]

    refused = llaunch("resume", str(run))
    assert refused.returncode == 2 and "is still RUNNING" in refused.stderr

    first = status(run)["job"]
    cancelled = llaunch("cancel", str(run))
    assert cancelled.returncode == 0, cancelled.stderr
    assert wait_until(run, finished, 60)["state"] == "CANCELLED"
    follow = llaunch("logs", "-f", str(run), timeout=60)  # returns once the job has ended
    assert follow.returncode == 0 and "CANCELLED" in follow.stdout

    resumed = llaunch("resume", str(run))  # a cancelled run goes again as a new job, from its checkpoint
    assert resumed.returncode == 0 and "submitted job" in resumed.stdout, resumed.stderr
    assert status(run)["job"] != first
    assert llaunch("cancel", str(run)).returncode == 0
    assert wait_until(run, finished, 60)["state"] == "CANCELLED"


def test_bad_data_fails_before_anything_is_queued(tmp_path, cache):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    before = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    done = llaunch("submit", str(QUICKSTART), *SHORT, f"output.dir={tmp_path / 'runs'}",
                   f"output.cache_dir={cache}", f"data.train={empty}")
    assert done.returncode == 2 and done.stderr.startswith("error: "), done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    after = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    assert after == before
