"""The hang watchdog on 2 real torchrun processes: one rank stalls mid-run, the run ends in seconds with
every live rank's stacks and exit code 3, and a resume finishes it exactly as an uninterrupted run."""

from __future__ import annotations

import json
import time

import pytest
import torch

from tests.conftest import llaunch, run_dirs
from tests.integration import test_checkpoints as checkpoints
from tests.integration.test_checkpoints import samples_per_step, start, train_losses, weights

cache, reference = checkpoints.cache, checkpoints.reference  # the same fixtures: an uninterrupted reference run

pytestmark = pytest.mark.integration

HANG = ["resources.hang_timeout.factor=5", "resources.hang_timeout.min_seconds=2",
        "resources.hang_timeout.startup_seconds=120"]
STALL_AT = 25


def test_a_stalled_rank_ends_the_run_with_stacks_and_resume_finishes_it_exactly(tmp_path, cache, reference,
                                                                                monkeypatch):
    monkeypatch.setenv("LLAUNCH_STALL_AT_STEP", f"{STALL_AT}:1")
    began = time.time()
    proc = start(tmp_path, cache, *HANG)
    output, _ = proc.communicate(timeout=300)
    took = time.time() - began
    [run] = run_dirs(tmp_path)
    assert proc.returncode == 3, output[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "failed" and result["exit_code"] == 3
    assert result["error"].startswith(f"hang: step {STALL_AT} ran ") and "resources.hang_timeout" in result["error"]
    assert result["error"] in output
    stacks = {rank: (run / "logs" / f"hang-step-{STALL_AT}-rank-{rank}.txt").read_text() for rank in (0, 1)}
    assert "in started" in stacks[1] and "watchdog.py" in stacks[1]  # where rank 1 stalled
    assert "_step" in stacks[0]  # rank 0 waits for it inside the step's collective
    metrics = train_losses(run)
    assert max(metrics) == STALL_AT - 1
    print(f"stall to exit: the run took {took:.1f} s in all")

    monkeypatch.delenv("LLAUNCH_STALL_AT_STEP")
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resumed from {run}/checkpoints/step-000020" in resumed.stdout
    assert samples_per_step(run) == samples_per_step(reference)  # nothing skipped, nothing trained twice
    expected, got = weights(reference), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
