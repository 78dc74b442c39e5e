"""One process is one plain process: no torchrun agent (unless its restarts are asked for), no DDP wrapper,
the same losses either way; `checkpoint.at_end: false` leaves the export and no final checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, llaunch, run_dirs

pytestmark = pytest.mark.integration

ONE = ["resources.procs_per_node=1", "train.global_batch_size=8", "train.max_steps=6", "train.log_every=1",
       "eval.at_start=false", "eval.max_batches=1"]


def _run(out: Path, cache: Path, *overrides: str) -> Path:
    result = llaunch("run", str(QUICKSTART), *ONE, *overrides, f"output.dir={out}", f"output.cache_dir={cache}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    [run] = run_dirs(out)
    return run


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if row["kind"] == "train"]


def test_one_process_runs_plain_and_trains_as_under_torchrun(tmp_path, shared_cache):
    plain = _run(tmp_path / "plain", shared_cache)
    supervised = _run(tmp_path / "torchrun", shared_cache, "resources.max_restarts=1")
    assert json.loads((plain / "plan.json").read_text())["launcher"] == "local"
    assert "torch.distributed.run" not in (plain / "launch.sh").read_text()
    assert "torch.distributed.run" in (supervised / "launch.sh").read_text()
    assert len(_losses(plain)) == 6
    assert _losses(plain) == _losses(supervised)


def test_checkpoint_at_end_false_exports_without_a_final_checkpoint(tmp_path, shared_cache):
    run = _run(tmp_path, shared_cache, "checkpoint.at_end=false")
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    assert (run / "export" / "model.safetensors").is_file()
    assert not list((run / "checkpoints").glob("step-*")) if (run / "checkpoints").exists() else True


def test_the_worker_prepares_into_the_entry_llaunch_prepare_makes(tmp_path):
    """`llaunch run` leaves preparation to the worker (torch is imported there anyway): the data is prepared
    after the run dir exists, into the same content-keyed cache entry `llaunch prepare` makes on a login node,
    by a child rank 0 forks while it imports the model code."""
    worker = llaunch("run", str(QUICKSTART), *ONE, f"output.dir={tmp_path / 'runs'}",
                     f"output.cache_dir={tmp_path / 'worker-cache'}")
    assert worker.returncode == 0, (worker.stdout + worker.stderr)[-3000:]
    lines = worker.stdout.splitlines()
    assert next(i for i, l in enumerate(lines) if l.startswith("run dir:")) < \
        next(i for i, l in enumerate(lines) if l.startswith("prepared data:"))
    # by a child forked before the model code is imported (prepare_ahead.py), whose lines the worker logs
    [run] = run_dirs(tmp_path / "runs")
    assert (run / "logs" / "prepare.log").read_text().startswith("prepared data:")
    assert "prepared data:" in (run / "logs" / "rank-0.log").read_text()
    login = llaunch("prepare", str(QUICKSTART), *ONE, f"output.cache_dir={tmp_path / 'login-cache'}")
    assert login.returncode == 0, login.stderr
    entries = [sorted(p.name for p in (tmp_path / cache / "data").iterdir()) for cache in ("worker-cache", "login-cache")]
    assert entries[0] == entries[1] and len(entries[0]) == 1
    again = llaunch("run", str(QUICKSTART), *ONE, f"output.dir={tmp_path / 'runs2'}",
                    f"output.cache_dir={tmp_path / 'worker-cache'}")
    assert f"prepared data found in cache: {tmp_path / 'worker-cache' / 'data' / entries[0][0]}" in again.stdout
