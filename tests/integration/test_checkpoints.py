"""Checkpoints you can bet a cluster week on: real 2-process runs, killed, interrupted, resharded, exported."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import QUICKSTART, ROOT, llaunch, run_dirs

pytestmark = pytest.mark.integration

STEPS = 60
ARGS = [f"train.max_steps={STEPS}", "checkpoint.every=10", "checkpoint.keep_last=3", "eval.every=0",
        "eval.at_start=false", "train.log_every=1", "logging.sample_ids=true", "logging.tensorboard=false"]


def start(out: Path, cache: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "launcher", "run", str(QUICKSTART), *ARGS, f"output.dir={out}",
            f"output.cache_dir={cache}", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal() -> None:
    """llaunch gets SIGINT's default action, as a terminal's foreground job does: tests started in the
    background (nohup, `cmd &`) inherit an ignored SIGINT, and llaunch then rightly ignores Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_checkpoint(out: Path, step: int, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 300
    while time.time() < deadline:
        found = list(out.glob(f"*/checkpoints/step-{step:06d}/COMPLETE"))
        if found:
            return found[0].parents[2]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {step} in time")


def hard_kill(proc: subprocess.Popen) -> None:
    import psutil

    parent = psutil.Process(proc.pid)
    for child in parent.children(recursive=True) + [parent]:
        child.kill()
    proc.wait()


def train_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if row["kind"] == "train"}


def samples_per_step(run: Path) -> dict[int, list[int]]:
    """The multiset of sample ids each step trained on over all ranks, from the newest attempt at that step."""
    rows = [json.loads(line) for path in (run / "logs").glob("samples-rank*.jsonl")
            for line in path.read_text().splitlines()]
    newest: dict[int, float] = {}
    for row in rows:
        newest[row["step"]] = max(newest.get(row["step"], 0.0), row["attempt"])
    merged: dict[int, list[int]] = {}
    for row in rows:
        if row["attempt"] == newest[row["step"]]:
            merged.setdefault(row["step"], []).extend(row["ids"])
    return {step: sorted(ids) for step, ids in merged.items()}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "export" / "model.safetensors")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache) -> Path:
    """The uninterrupted 2-process run every interrupted one must match."""
    out = tmp_path_factory.mktemp("reference")
    proc = start(out, cache)
    assert proc.wait() == 0, proc.stdout.read()
    return run_dirs(out)[0]


def interrupted_copy(reference: Path, dest: Path, keep: int) -> Path:
    """The reference run as a crash right after step `keep`'s checkpoint leaves it (no newer checkpoint, no
    export, no result); a copy, so tests of what resume does with such a run need no training of their own."""
    run = shutil.copytree(reference, dest / reference.name)
    for step in (run / "checkpoints").iterdir():
        if int(step.name.split("-")[1]) > keep:
            shutil.rmtree(step)
    shutil.rmtree(run / "export")
    (run / "result.json").unlink()
    return run


def test_hard_kill_then_resume_is_bitwise_exact(tmp_path, cache, reference):
    proc = start(tmp_path, cache)
    run = wait_for_checkpoint(tmp_path, 10, proc)
    time.sleep(random.Random(1).uniform(0.0, 1.5))  # a random step after the first checkpoint
    hard_kill(proc)
    assert not (run / "result.json").exists()

    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    expected, got = weights(reference), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    reference_losses = train_losses(reference)
    assert train_losses(run) == reference_losses  # every step, before and after the checkpoint
    assert samples_per_step(run) == samples_per_step(reference)


def test_killed_during_a_save_resumes_from_the_newest_complete_one(tmp_path, reference):
    """What SIGKILL in the middle of a save leaves: a newer step dir with partial shards and no marker."""
    run = interrupted_copy(reference, tmp_path, keep=40)
    newest = run / "checkpoints" / "step-000040"
    torn = run / "checkpoints" / "step-000999"
    shutil.copytree(newest, torn)
    (torn / "COMPLETE").unlink()
    shard = torn / "__1_0.distcp"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])

    listing = llaunch("checkpoints", str(run))
    assert "INCOMPLETE" in listing.stdout and f"{newest.name}  <- resume uses this" in listing.stdout

    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resumed from {newest}" in resumed.stdout
    assert not torn.exists()
    expected, got = weights(reference), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_elastic_resume_continues_the_same_sample_sequence(tmp_path, cache, reference, first, then):
    if first == 2:  # the reference's own 2-process checkpoint
        run, saved = interrupted_copy(reference, tmp_path, keep=40), 40
    else:
        proc = start(tmp_path, cache, f"resources.procs_per_node={first}")
        run = wait_for_checkpoint(tmp_path, 20, proc)
        hard_kill(proc)
        saved = max(int(p.parent.name.split("-")[1]) for p in run.glob("checkpoints/*/COMPLETE"))

    resumed = llaunch("resume", str(run), f"resources.procs_per_node={then}")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resumed from {run}/checkpoints/step-{saved:06d}" in resumed.stdout
    assert samples_per_step(run) == samples_per_step(reference)  # nothing skipped, nothing repeated
    expected, got = train_losses(reference), train_losses(run)
    for step in range(saved + 1, STEPS + 1):
        assert got[step] == pytest.approx(expected[step], rel=2e-4), step


def test_zero_checkpoint_resumes_on_another_world_size_through_the_universal_format(tmp_path, cache):
    """ZeRO-2 on 2 processes, resumed on 1 from step 10: DeepSpeed's ds_to_universal converts the shards."""
    args = [str(QUICKSTART), "parallel.strategy=zero2", "train.max_steps=20", "checkpoint.every=10",
            "checkpoint.keep_last=2", "eval.every=0", "eval.at_start=false", "train.log_every=1",
            "logging.sample_ids=true", "logging.tensorboard=false", f"output.cache_dir={cache}",
            f"output.dir={tmp_path}"]
    whole = llaunch("run", *args)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    expected_losses, expected_samples = train_losses(run), samples_per_step(run)
    shutil.rmtree(run / "checkpoints" / "step-000020")

    resumed = llaunch("resume", str(run), "resources.procs_per_node=1")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resumed from {run}/checkpoints/step-000010" in resumed.stdout
    assert (run / "checkpoints" / "step-000010" / "deepspeed_universal").is_dir()
    assert samples_per_step(run) == expected_samples  # the same samples at every step, on 1 process
    got = train_losses(run)
    for step in range(11, 21):
        assert got[step] == pytest.approx(expected_losses[step], rel=2e-4), step


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_checkpoints_at_the_next_step_and_resume_loses_nothing(tmp_path, cache, reference, sig):
    proc = start(tmp_path, cache)
    run = wait_for_checkpoint(tmp_path, 10, proc)
    proc.send_signal(sig)  # Ctrl-C, or a process manager stopping llaunch: it forwards to the workers
    output, _ = proc.communicate(timeout=120)
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted", output
    assert (run / "checkpoints" / f"step-{result['step']:06d}" / "COMPLETE").is_file()
    assert "continue with: llaunch resume" in output

    if sig == signal.SIGTERM:
        return  # the stop is the same from here on; one resume proves it
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert f"(step {result['step']}," in resumed.stdout
    expected, got = weights(reference), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_export_consolidates_a_checkpoint_with_the_training_logits(tmp_path, reference):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "exported"
    result = llaunch("export", str(reference), "--step", str(STEPS), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    ids = torch.arange(1, 65).reshape(2, 32)
    with torch.no_grad():
        trained = AutoModelForCausalLM.from_pretrained(reference / "export")(input_ids=ids).logits
        exported = AutoModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
    assert torch.equal(trained, exported)
    assert (out / "tokenizer.json").is_file()

    half = llaunch("export", str(reference), "--dtype", "bf16", "--out", str(tmp_path / "bf16"))
    assert half.returncode == 0, half.stderr[-2000:]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "bf16").dtype == torch.bfloat16
    again = llaunch("export", str(reference), "--out", str(out))
    assert again.returncode == 2 and "exists and is not empty" in again.stderr


def test_resume_refuses_a_change_to_the_training_itself(reference):
    result = llaunch("resume", str(reference), "train.lr=0.1")
    assert result.returncode == 2
    assert "train.lr: 0.003 -> 0.1" in result.stderr and "--force" in result.stderr


def test_async_save_keeps_training_exact(tmp_path, cache, reference):
    proc = start(tmp_path, cache, "checkpoint.async=true")
    assert proc.wait() == 0, proc.stdout.read()
    run = run_dirs(tmp_path)[0]
    assert train_losses(run) == train_losses(reference)
    assert [p.parent.name for p in sorted(run.glob("checkpoints/*/COMPLETE"))] == [
        "step-000040", "step-000050", "step-000060"]


def test_compiled_blocks_train_like_eager_and_resume_exactly(tmp_path, cache, reference):
    """parallel.compile: the same losses as the eager reference (fp32 sums in another order), the same
    checkpoint and export keys (blocks compiled in place), and a resumed compiled run is bitwise exact."""
    proc = start(tmp_path / "compiled", cache, "parallel.compile=true")
    assert proc.wait() == 0, proc.stdout.read()
    compiled = run_dirs(tmp_path / "compiled")[0]
    eager_losses, compiled_losses = train_losses(reference), train_losses(compiled)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert weights(compiled).keys() == weights(reference).keys()

    run = interrupted_copy(compiled, tmp_path, keep=40)
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert train_losses(run) == compiled_losses
    expected, got = weights(compiled), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(small_disk, cache):
    proc = start(small_disk, cache, "logging.sample_ids=false", "output.export=false")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output
    assert "save failed: no space left on device" in output
    run = run_dirs(small_disk)[0]
    complete = [p.parent.name for p in run.glob("checkpoints/*/COMPLETE")]
    assert complete == ["step-000010"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000010"]  # the torn one is gone
    assert json.loads((run / "result.json").read_text())["status"] == "failed"


def test_a_damaged_checkpoint_is_reported_refused_by_export_and_skipped_by_resume(tmp_path, reference):
    """One flipped byte in the newest checkpoint (bit rot): --verify names the file, export refuses it in one
    line, resume falls back to the checkpoint before it and ends bitwise where the uninterrupted run did."""
    run = interrupted_copy(reference, tmp_path, keep=STEPS)
    newest = run / "checkpoints" / f"step-{STEPS:06d}"
    marker = json.loads((newest / "COMPLETE").read_text())
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "rng-rank0.pt", "rng-rank1.pt",
            "trainer_state.json"} <= set(marker["files"])
    shard = newest / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))

    listing = llaunch("checkpoints", str(run), "--verify")
    assert listing.returncode == 1
    [bad] = [line for line in listing.stdout.splitlines() if "DAMAGED" in line]
    assert newest.name in bad and "__1_0.distcp reads back with xxh3_64" in bad
    assert f"step-{STEPS - 10:06d}  <- resume uses this" in listing.stdout

    exported = llaunch("export", str(run), "--out", str(tmp_path / "exported"))
    assert exported.returncode == 2 and not (tmp_path / "exported").exists()
    assert exported.stderr.count("\n") == 1 and "__1_0.distcp" in exported.stderr and "damaged" in exported.stderr

    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"checkpoint {newest} is damaged (__1_0.distcp" in resumed.stdout
    assert f"resumed from {run}/checkpoints/step-{STEPS - 10:06d}" in resumed.stdout
    expected, got = weights(reference), weights(run)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert llaunch("checkpoints", str(run), "--verify").returncode == 0
