"""The quickstart end to end with real torchrun processes (gloo, CPU): learn, checkpoint, export; the data
cache. Resuming after a hard kill, bitwise, is tests/integration/test_checkpoints.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUICKSTART, ROOT, SECRETS, llaunch, run_dirs

pytestmark = pytest.mark.integration


def metrics(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["kind"] == kind]


def test_quickstart_learns_checkpoints_and_exports(quickstart_run, shared_cache):
    run, result = quickstart_run
    for path in run.rglob("*"):  # secrets in the environment never land in the run dir
        if path.is_file():
            content = path.read_bytes()
            assert not any(secret.encode() in content for secret in SECRETS.values()), path
    assert not any(secret in result.stdout + result.stderr for secret in SECRETS.values())
    assert "run completed at step 200/200" in result.stdout
    assert json.loads((run / "result.json").read_text())["status"] == "completed"

    evals = metrics(run, "eval")
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 200
    assert evals[0]["loss"] - evals[-1]["loss"] >= 1.0, evals

    newest = run / "checkpoints" / "step-000200"
    assert (newest / "COMPLETE").is_file()
    assert sorted(p.name for p in newest.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # one shard per rank
    assert len(list((run / "checkpoints").iterdir())) == 2  # keep_last: 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "train/tokens_per_s", "eval/loss"} <= set(events.Tags()["scalars"])

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run / "export")
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    assert tokenizer("anna has two red cats .").input_ids
    eval_blocks = np.load(next(shared_cache.glob("data/*/eval.npy")))
    with torch.no_grad():
        batch = torch.from_numpy(eval_blocks.astype(np.int64))
        loss = model(input_ids=batch, labels=batch).loss.item()
    assert loss == pytest.approx(evals[-1]["loss"], abs=1e-3)  # the export is the trained model


def test_prepare_caches_data_for_the_run(tmp_path):
    cache = tmp_path / "cache"
    first = llaunch("prepare", str(QUICKSTART), f"output.cache_dir={cache}")
    assert first.returncode == 0, first.stderr
    assert "prepared data:" in first.stdout
    second = llaunch("prepare", str(QUICKSTART), f"output.cache_dir={cache}")
    assert "prepared data found in cache" in second.stdout


def test_prepared_data_is_found_without_torch_and_a_changed_file_is_noticed(tmp_path):
    corpus = tmp_path / "train.txt"
    shutil.copy(QUICKSTART.parent / "data" / "quickstart" / "train.txt", corpus)
    args = [str(QUICKSTART), f"output.cache_dir={tmp_path / 'cache'}", f"data.train={corpus}"]
    assert "prepared data:" in llaunch("prepare", *args).stdout
    check = ("import sys; from launcher.lifecycle import prepare_data; from launcher.recipe import load_recipe; "
             "prepare_data(load_recipe(sys.argv[1], sys.argv[2:])); print('torch' in sys.modules)")
    again = subprocess.run([sys.executable, "-c", check, *args], cwd=ROOT, text=True, capture_output=True)
    assert again.stdout.splitlines() == [f"prepared data found in cache: {next((tmp_path / 'cache' / 'data').iterdir())}",
                                         "False"], again.stdout + again.stderr  # llaunch run starts faster
    corpus.write_text(corpus.read_text().replace("anna", "anne"))
    changed = llaunch("prepare", *args)
    assert "prepared data:" in changed.stdout and len(list((tmp_path / "cache" / "data").iterdir())) == 2


def test_single_process_local_launcher(out_dir, shared_cache):
    result = llaunch("run", str(QUICKSTART), f"output.dir={out_dir}", f"output.cache_dir={shared_cache}",
                     "resources.launcher=local", "resources.procs_per_node=1", "train.max_steps=20",
                     "~train.global_batch_size", "eval.every=0")
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = run_dirs(out_dir)
    assert json.loads((run / "plan.json").read_text())["commands"][0]["argv"][1:3] == ["-m", "launcher.train"]
    assert (run / "checkpoints" / "step-000020" / "COMPLETE").is_file()
    assert (run / "export" / "model.safetensors").is_file()
