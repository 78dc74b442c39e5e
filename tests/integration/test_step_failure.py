"""A crash inside a step (an exception on one rank while the other waits in the gradient all-reduce) ends the
run: exit code 1, result.json naming the rank and the error, no worker left behind, the newest complete
checkpoint intact and resumable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, llaunch, run_dirs

pytestmark = pytest.mark.integration


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.mark.parametrize("async_save", [False, True], ids=["sync-save", "async-save"])
def test_exception_in_a_step_ends_the_run_and_keeps_the_checkpoint(async_save, out_dir, shared_cache):
    overrides = ["train.max_steps=6", "checkpoint.every=2", "eval.at_start=false", "eval.every=0",
                 f"checkpoint.async={str(async_save).lower()}", f"output.dir={out_dir}",
                 f"output.cache_dir={shared_cache}"]
    result = llaunch("run", str(QUICKSTART), *overrides, env={"LLAUNCH_FAIL_AT_STEP": "5:1"}, timeout=300)
    [run] = run_dirs(out_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    recorded = json.loads((run / "result.json").read_text())
    assert recorded["status"] == "failed" and recorded["exit_code"] == 1
    assert recorded["error"] == ("rank 1: RuntimeError: failure injected in step 5 on rank 1 (LLAUNCH_FAIL_AT_STEP)")
    assert "run failed" in output and "llaunch resume" in output
    assert _processes_mentioning(str(run)) == []
    # an async save is confirmed at the next step boundary: step 4's never came, so step 2 is the newest
    newest = 2 if async_save else 4
    complete = sorted(p.parent.name for p in (run / "checkpoints").glob("step-*/COMPLETE"))
    assert complete[-1] == f"step-{newest:06d}", complete

    resumed = llaunch("resume", str(run), timeout=300)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert f"step {newest}," in (run / "logs" / "rank-0.log").read_text().split("resumed from")[1]
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
