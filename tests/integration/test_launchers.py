"""Multi-node torchrun (two agents on 127.0.0.1, c10d) and the DeepSpeed launcher, run for real on CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import QUICKSTART, ROOT, llaunch, run_dirs

pytestmark = pytest.mark.integration

SHORT = ["resources.procs_per_node=1", "resources.threads_per_proc=1", "train.max_steps=20", "checkpoint.every=10",
         "eval.every=0", "eval.at_start=false"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_torchrun_agents_train_together(out_dir, shared_cache):
    """Node 0 runs the recipe (creating the run dir); node 1 joins with `llaunch resume RUN_DIR`."""
    args = [str(QUICKSTART), "--nodes", "2", *SHORT, f"resources.rdzv_endpoint=127.0.0.1:{free_port()}",
            f"output.dir={out_dir}", f"output.cache_dir={shared_cache}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    node0 = subprocess.Popen([sys.executable, "-m", "launcher", "run", *args], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not list(out_dir.glob("*/plan.json")) and node0.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    [run] = run_dirs(out_dir)
    node1 = llaunch("resume", str(run), timeout=300)
    out0, _ = node0.communicate(timeout=300)
    assert node0.returncode == 0 and node1.returncode == 0, out0[-3000:] + node1.stdout[-3000:] + node1.stderr
    assert f"start the same on each other node with `llaunch resume {run}`" in out0

    plan = json.loads((run / "plan.json").read_text())
    [command] = plan["commands"]
    assert command["node"] == "each of 2 nodes" and "c10d" in command["argv"] and "--standalone" not in command["argv"]
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    shards = sorted(p.name for p in (run / "checkpoints" / "step-000020").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]  # one rank on each "node"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["kind"] == "train"] == [10, 20]
    assert (run / "export" / "model.safetensors").is_file()


def test_deepspeed_launcher_on_one_node(out_dir, shared_cache):
    done = llaunch("run", str(QUICKSTART), "--on", "deepspeed", *SHORT, "resources.procs_per_node=2",
                   f"output.dir={out_dir}", f"output.cache_dir={shared_cache}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = run_dirs(out_dir)
    argv = json.loads((run / "plan.json").read_text())["commands"][0]["argv"]
    assert argv[1:3] == ["-m", "deepspeed.launcher.runner"] and "--no_local_rank" in argv
    assert "run completed at step 20/20" in done.stdout
    shards = sorted(p.name for p in (run / "checkpoints" / "step-000020").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]
    assert (run / "launch.sh").read_text().count("deepspeed.launcher.runner") == 1


def test_an_elastic_start_with_fewer_nodes_keeps_the_global_batch(out_dir, shared_cache):
    """torchrun --nnodes 1:2 may start the workers with one node: they see 1 process where the recipe says
    2 nodes, and accumulate twice as many micro batches so each step is still 16 samples."""
    first = llaunch("run", str(QUICKSTART), "train.max_steps=2", "checkpoint.every=1", "eval.every=0",
                    "eval.at_start=false", "output.export=false", "train.log_every=1", "resources.launcher=local",
                    "resources.procs_per_node=1", f"output.dir={out_dir}", f"output.cache_dir={shared_cache}")
    assert first.returncode == 0, first.stderr[-3000:]
    [run] = run_dirs(out_dir)
    recipe = (run / "recipe.yaml").read_text()
    for was, now in (("launcher: local", "launcher: torchrun"), ("  nodes: 1", "  nodes: 2"),
                     ("min_nodes: null", "min_nodes: 1"), ("max_steps: 2", "max_steps: 4")):
        assert was in recipe
        recipe = recipe.replace(was, now)
    (run / "recipe.yaml").write_text(recipe)
    worker = subprocess.run([sys.executable, "-m", "launcher.train", str(run)], cwd=ROOT, text=True,
                            capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    assert "1 processes joined (resources.nodes=1): grad_accum 2, global batch 16" in worker.stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    consumed = {row["step"]: row["consumed_samples"] for row in rows if row["kind"] == "train"}
    assert consumed == {1: 16, 2: 32, 3: 48, 4: 64}
