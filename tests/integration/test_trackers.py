"""Experiment trackers, offline and with no network: a W&B run in offline mode and an MLflow file store hold
a run's train and eval scalars and its resolved recipe; a run that fails at step 8 and is resumed
(`llaunch resume`, from the step-5 checkpoint) continues the same W&B and MLflow runs. A recipe asking for
a tracker whose package is missing is a one-line error before anything starts."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, llaunch, run_dirs

pytestmark = pytest.mark.integration


def wandb_records(path: Path):
    """The records of a W&B transaction log (run-ID.wandb: a 7-byte header, then LevelDB-log blocks of 32 KiB)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if length == 0 and kind == 0:  # a block's zero-filled tail
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_and_mlflow_file_store_keep_one_run_across_a_resume(quickstart_run, shared_cache, tmp_path,
                                                                          monkeypatch):
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    store = f"file:{tmp_path / 'mlruns'}"
    args = ["run", str(ROOT / "recipes" / "dpo.yaml"), f"model.path={quickstart_run[0] / 'export'}",
            f"output.dir={tmp_path / 'runs'}", f"output.cache_dir={shared_cache}", "train.max_steps=10",
            "train.log_every=5", "eval.every=5", "eval.max_batches=2", "checkpoint.every=5",
            "logging.wandb.project=llaunch-test", "logging.wandb.mode=offline", "logging.wandb.tags=[dpo,cpu]",
            f"logging.mlflow.tracking_uri={store}", "logging.mlflow.experiment=preference"]
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "WANDB_SILENT": "true", "WANDB_API_KEY": "wandb_secret_9a7c"}
    failed = llaunch(*args, env={**env, "LLAUNCH_FAIL_AT_STEP": "8"})
    assert failed.returncode == 1, (failed.stdout + failed.stderr)[-3000:]
    [run] = run_dirs(tmp_path / "runs")
    ids = json.loads((run / "trackers.json").read_text())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store for those who ask
    client = mlflow.MlflowClient(tracking_uri=store)
    assert client.get_run(ids["mlflow"]).info.status == "FAILED"  # the failed start, until the resume
    resumed = llaunch("resume", str(run), env=env)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert json.loads((run / "trackers.json").read_text()) == ids

    # W&B: one run id, two starts; the first holds steps up to 5, the resumed one 10, train and eval scalars
    starts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(starts) == 2 and all(path.name.endswith(f"-{ids['wandb']}") for path in starts)
    steps, exit_codes = [], []
    for start in starts:
        history, config = [], {}
        for record in wandb_records(start / f"run-{ids['wandb']}.wandb"):
            kind = record.WhichOneof("record_type")
            if kind == "exit":
                exit_codes.append(record.exit.exit_code)
            if kind == "history":
                history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.history.item})
            elif kind == "run":
                config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
                assert list(record.run.tags) == ["dpo", "cpu"]
        assert config["objective"] == "dpo" and config["dpo"]["beta"] == 0.5  # the resolved recipe
        steps.append(sorted({row["_step"] for row in history}))
        assert any("train/loss" in row for row in history) and any("eval/reward_accuracy" in row for row in history)
    assert steps[0][-1] == 5 and steps[1][-1] == 10
    assert exit_codes == [1, 0]  # the failed start is marked failed in W&B

    # MLflow: one run, its params the recipe, its metrics every logged step of both starts
    experiment = client.get_experiment_by_name("preference")
    [found] = client.search_runs([experiment.experiment_id])
    assert found.info.run_id == ids["mlflow"] and found.info.status == "FINISHED"
    assert found.data.params["objective"] == '"dpo"' and found.data.params["dpo.loss"] == '"sigmoid"'
    assert {m.step for m in client.get_metric_history(found.info.run_id, "train/loss")} == {5, 10}
    assert {m.step for m in client.get_metric_history(found.info.run_id, "eval/reward_accuracy")} == {0, 5, 10}
    # secrets by name only: the key never lands in the run dir
    for path in run.rglob("*"):
        if path.is_file():
            assert b"wandb_secret_9a7c" not in path.read_bytes(), path


# an environment without the packages: Python's own way to make a module unimportable
HIDE = ("import sys\n"
        "sys.modules.update(wandb=None, mlflow=None)\n"
        "from launcher.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("key, install", [("logging.wandb.project=p", "pip install wandb"),
                                          ("logging.mlflow.experiment=e", "pip install mlflow-skinny")])
def test_a_tracker_without_its_package_is_a_one_line_error_before_anything_starts(tmp_path, key, install):
    import subprocess

    result = subprocess.run([sys.executable, "-c", HIDE, "run", str(ROOT / "recipes" / "quickstart.yaml"), key,
                             f"output.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"is set but the {key.split('.')[1]} package is not installed; `{install}`" in line
    assert not any(tmp_path.iterdir())
