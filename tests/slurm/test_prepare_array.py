"""Unprepared data under SLURM: an array job prepares it shard by shard, the training job waits for every task
(--dependency=afterok) and never runs when one fails; status says which task failed and why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import zstandard

from tests.conftest import QUICKSTART, ROOT, llaunch
from tests.slurm.conftest import SHORT, finished, wait_until

pytestmark = pytest.mark.slurm

STORIES = ROOT / "recipes" / "data" / "quickstart" / "train.txt"


def _corpus(folder: Path) -> list[Path]:
    """The quickstart's stories as 3 jsonl.zst shards."""
    lines = STORIES.read_text().splitlines()
    folder.mkdir()
    shards = []
    for k in range(3):
        body = "".join(json.dumps({"text": line}) + "\n" for line in lines[k::3]).encode()
        shards.append(folder / f"stories-{k}.jsonl.zst")
        shards[-1].write_bytes(zstandard.ZstdCompressor().compress(body))
    return shards


def _submit(tmp_path: Path) -> tuple[Path, str]:
    # the tokenizer learns from the plain text file: sentencepiece reads its files as they are, not through
    # the data readers, so a .zst shard would feed it compressed bytes
    done = llaunch("submit", str(QUICKSTART), *SHORT, "slurm.prepare_tasks=3", f"data.train={tmp_path / 'corpus'}",
                   f"tokenizer.train.files=[{STORIES}]",
                   f"output.dir={tmp_path / 'runs'}", f"output.cache_dir={tmp_path / 'cache'}", "train.max_steps=10")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    array = re.search(r"submitted array job (\d+) to prepare the data", done.stdout)
    run = re.search(r"^run dir: (.+)$", done.stdout, re.MULTILINE)
    assert array and run, done.stdout
    return (ROOT / run.group(1)).resolve(), array.group(1)


def test_an_array_prepares_the_data_and_the_training_job_runs_after_it(tmp_path):
    _corpus(tmp_path / "corpus")
    run, array = _submit(tmp_path)
    row = wait_until(run, finished, 300)
    logs = llaunch("logs", str(run)).stdout
    assert row["state"] == "COMPLETED" and row["step"] == 10, (row, logs[-3000:])
    assert row["prepare"] == {"job": array, "state": "COMPLETED", "tasks": 3, "failed": []}
    for task in range(3):  # 3 train shards + the eval file: task 0 took two
        assert f"task {task} of 3:" in (run / "logs" / f"prepare-{array}-{task}.out").read_text()
    assert json.loads((run / "result.json").read_text())["status"] == "completed"


def test_a_corrupt_shard_fails_its_task_and_the_training_job_never_runs(tmp_path):
    shards = _corpus(tmp_path / "corpus")
    shards[1].write_bytes(shards[1].read_bytes()[:-20])  # a truncated copy: shard index 1, task 1
    run, array = _submit(tmp_path)
    row = wait_until(run, lambda r: finished(r) and r["prepare"]["state"] == "FAILED", 300)
    assert row["state"] == "CANCELLED" and row["reason"] == "DependencyNeverSatisfied", row
    [failed] = row["prepare"]["failed"]
    assert failed["task"] == 1 and failed["state"] == "FAILED", row["prepare"]
    assert failed["error"].startswith(f"{shards[1]}:") and "corrupt" in failed["error"], failed
    assert not (run / "result.json").exists() and not (run / "metrics.jsonl").exists()  # no worker ever started
    table = llaunch("status", str(run)).stdout
    assert f"{array} FAILED (task 1 FAILED: {shards[1]}:" in table, table
