"""Faults on the local cluster (3 nodes, 2-node jobs: one spare): a hung worker and a lost node end the job
at once, and it restarts by itself from the newest complete checkpoint; a slow rank is named by status."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, llaunch
from tests.slurm.conftest import SHORT, finished, signal_workers, submit, train_steps, wait_until

pytestmark = pytest.mark.slurm

STEPS = 50  # x 16 samples: less than one epoch of the quickstart data, so no sample id repeats


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _submit(tmp_path: Path, cache: Path, *args: str, env: dict | None = None) -> Path:
    return submit(str(QUICKSTART), *SHORT, f"output.dir={tmp_path}", f"output.cache_dir={cache}",
                  f"train.max_steps={STEPS}", "checkpoint.every=10", "train.log_every=5", *args, env=env)


def _counted_samples(run: Path) -> dict[int, list[int]]:
    """step -> the sample ids trained at that step by all ranks, from the newest attempt that trained it;
    also checks that an older attempt trained the same samples at that step."""
    by_step: dict[int, dict[float, list[int]]] = {}
    for path in (run / "logs").glob("samples-rank*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            by_step.setdefault(row["step"], {}).setdefault(row["attempt"], []).extend(row["ids"])
    for step, attempts in by_step.items():
        assert len({tuple(sorted(ids)) for ids in attempts.values()}) == 1, f"step {step} trained other samples"
    return {step: attempts[max(attempts)] for step, attempts in sorted(by_step.items())}


def test_a_hung_worker_ends_the_job_which_requeues_and_resumes(tmp_path, cache):
    # startup_seconds also bounds the phases between steps (logging, saves): the stop may land in one
    run = _submit(tmp_path, cache, "logging.sample_ids=true", "resources.hang_timeout.factor=5",
                  "resources.hang_timeout.min_seconds=3", "resources.hang_timeout.startup_seconds=60")
    row = wait_until(run, lambda r: r["step"] >= 15 or finished(r), 180)
    assert not finished(row), row
    signal_workers(row["job"], "node2", signal.SIGSTOP)
    seen: list[str] = []
    row = wait_until(run, finished, 300, seen)
    logs = llaunch("logs", str(run)).stdout
    assert row["state"] == "COMPLETED" and row["step"] == STEPS and row["restarts"] >= 1, (seen, logs[-3000:])
    hang = re.fullmatch(r"hang at step (\d+) on rank (\d)", row["restart_causes"][0])
    assert hang, row["restart_causes"]
    step, hung = int(hang.group(1)), int(hang.group(2))
    # every rank that could wrote its stacks; the stopped one (named as the hung rank) cannot
    stacks = sorted(p.name for p in (run / "logs").glob(f"hang-step-{step}-rank-*.txt"))
    assert stacks == [f"hang-step-{step}-rank-{1 - hung}.txt"], stacks
    assert f"hang at step {step} on rank {hung}; requeueing (restart 1 of at most 2)" in logs
    resumed = int(re.search(rf"resumed from {run}/checkpoints/step-(\d+)", logs).group(1))
    assert step - 10 <= resumed <= step  # the newest complete checkpoint (a save the hang cut short is not)
    # every step once in the counted samples, the retrained ones with the same samples, none twice
    samples = _counted_samples(run)
    assert list(samples) == list(range(1, STEPS + 1))
    ids = [i for step_ids in samples.values() for i in step_ids]
    assert len(ids) == len(set(ids)) == STEPS * 16
    assert train_steps(run)[-1] == STEPS


def test_a_lost_node_ends_the_job_which_restarts_on_the_other_nodes(tmp_path, cache):
    run = _submit(tmp_path, cache)
    row = wait_until(run, lambda r: r["step"] >= 15 or finished(r), 180)
    assert not finished(row), row
    first = row["job"]
    signal_workers(first, "node2", signal.SIGKILL)
    seen: list[str] = []
    row = wait_until(run, lambda r: r["job"] != first and finished(r), 300, seen)
    logs = llaunch("logs", str(run)).stdout
    assert row["state"] == "COMPLETED" and row["step"] == STEPS, (seen, logs[-3000:])
    assert row["restarts"] == 1 and row["restart_causes"] == ["node node2 lost"], row
    assert json.loads((run / "slurm.json").read_text())["jobs"] == [first, row["job"]]
    job = subprocess.run(["scontrol", "show", "job", row["job"]], capture_output=True, text=True).stdout
    assert "ExcNodeList=node2" in job and re.search(r"\bNodeList=node\[1,3\]", job), job
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    table = llaunch("status", str(run)).stdout
    assert "1 (node node2 lost)" in table, table


def test_a_slow_rank_is_named_by_status(tmp_path, cache):
    # two ranks: the median is their mean, so the sleep must beat the factor by a margin on loaded cores
    run = _submit(tmp_path, cache, "train.max_steps=12", "train.log_every=2", "resources.slow_rank.windows=2",
                  "resources.slow_rank.factor=1.2", env={"LLAUNCH_SLOW_RANK": "1:0.6"})
    row = wait_until(run, finished, 180)
    assert row["state"] == "COMPLETED", row
    assert row["slow_ranks"] and row["slow_ranks"][0]["rank"] == 1, row
    table = llaunch("status", str(run)).stdout
    assert f"rank 1 on {socket.gethostname()}" in table, table  # the fake nodes share this host's name
