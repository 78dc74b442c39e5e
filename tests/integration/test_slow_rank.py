"""A rank persistently slower than the others (a test-only knob sleeps in its step) is named with its host in
the log, in metrics.jsonl and by `llaunch status`; an even run names nobody."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import QUICKSTART, llaunch, run_dirs

pytestmark = pytest.mark.integration

ARGS = ["train.max_steps=12", "train.log_every=2", "eval.at_start=false", "eval.every=0", "logging.tensorboard=false",
        "resources.slow_rank.windows=2", "output.export=false"]


def _run(out, cache, env=None):
    result = llaunch("run", str(QUICKSTART), *ARGS, f"output.dir={out}", f"output.cache_dir={cache}", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return run_dirs(out)[0]


def test_a_slow_rank_is_named_with_its_host(tmp_path, shared_cache):
    run = _run(tmp_path / "slow", shared_cache, env={"LLAUNCH_SLOW_RANK": "1:0.3"})
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    named = [row["slow_ranks"] for row in rows if row["kind"] == "train" and row.get("slow_ranks")]
    assert named and all(entry[0]["rank"] == 1 and entry[0]["host"] == socket.gethostname() for entry in named)
    assert "slow rank 1 on" in (run / "logs" / "rank-0.log").read_text()
    status = llaunch("status", str(run))
    assert status.returncode == 0 and f"rank 1 on {socket.gethostname()}" in status.stdout, status.stdout

    even = _run(tmp_path / "even", shared_cache)
    even_rows = [json.loads(line) for line in (even / "metrics.jsonl").read_text().splitlines()]
    assert not any(row.get("slow_ranks") for row in even_rows)
