"""Every engine x method the issue names, for real: 2 torchrun processes on CPU (gloo; DeepSpeed's CPU accelerator).

Each case trains the quickstart's tiny Llama, its eval loss falls and its export reproduces the final eval loss.
Each checkpoint format resumes: the newest checkpoint is deleted, `llaunch resume` continues from the one before,
and every loss logged after it and every exported weight equal those of the uninterrupted run. DDP full training
resumes in tests/integration/test_checkpoints.py (after SIGKILL, on another world size), ZeRO-2 full there too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUICKSTART, llaunch, run_dirs

pytestmark = pytest.mark.integration

STEPS, SAVE_EVERY = 16, 8
LORA = ["method.type=lora", "train.lr=1e-2"]
CASES = {
    # name: (overrides, least eval-loss drop over the 16 steps)
    "fsdp2-full": (["parallel.strategy=fsdp2"], 1.0),
    "zero2-full": (["parallel.strategy=zero2"], 1.0),
    "zero3-full": (["parallel.strategy=zero3"], 1.0),
    "zero3-offload-optimizer": (["parallel.strategy=zero3", "parallel.offload=optimizer"], 1.0),
    "ddp-lora": (LORA, 0.25),
    "fsdp2-lora": (LORA + ["parallel.strategy=fsdp2"], 0.25),
    "zero2-lora": (LORA + ["parallel.strategy=zero2"], 0.25),
    "ddp-qlora-4bit": (["method.type=qlora", "train.lr=1e-2"], 0.25),
    "ddp-lora-8bit": (["method.type=qlora", "method.qlora.bits=8", "train.lr=1e-2"], 0.25),
    "ddp-freeze-top1": (["method.type=freeze", "method.freeze.train_top_blocks=1"], 0.3),
    # gradual unfreezing: block 1 trains from the start, block 0 from step 8 (the resumed run starts there)
    "ddp-freeze-gradual": (["method.type=freeze", "method.freeze.train_top_blocks=1",
                            f"method.freeze.unfreeze_every={SAVE_EVERY}"], 0.3),
}
# `llaunch export` from the last checkpoint equals the run's own export, for the formats the DDP export test
# (test_checkpoints) does not cover: ZeRO partitions (zero_to_fp32), ZeRO adapter-only, DCP adapter-only
# on a 4-bit base
EXPORTED = ("zero3-full", "zero2-lora", "ddp-qlora-4bit")
# resumed: one case per kind of checkpoint state (the others write the same kind): sharded DTensors, full and
# with frozen ones (FSDP2), ZeRO-3 partitions with an offloaded optimizer, DDP's adapter-only state (over a
# 4-bit base, whose CPU kernel once broke exactness), ZeRO adapter-only, and a freeze schedule that changes
# the trainable set after the checkpoint
RESUMED = ("fsdp2-full", "fsdp2-lora", "zero3-offload-optimizer", "ddp-qlora-4bit", "zero2-lora", "ddp-freeze-gradual")
CHANGED = {"ddp-freeze-top1": ("model.layers.1.",), "ddp-freeze-gradual": ("model.layers.0.", "model.layers.1.")}


def _rows(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["kind"] == kind]


def _weights(directory: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(directory / "model.safetensors")


def _export_loss(export: Path, cache: Path) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(export)
    blocks = torch.from_numpy(np.load(next(cache.glob("data/*/eval.npy"))).astype(np.int64))
    with torch.no_grad():
        return model(input_ids=blocks, labels=blocks).loss.item()


@pytest.mark.parametrize("case", list(CASES))
def test_engine_method_trains_exports_and_resumes(case, out_dir, shared_cache, tmp_path):
    overrides, least_drop = CASES[case]
    args = [str(QUICKSTART), f"output.dir={out_dir}", f"output.cache_dir={shared_cache}",
            f"train.max_steps={STEPS}", f"checkpoint.every={SAVE_EVERY}", "train.warmup_steps=4",
            "train.log_every=4", "eval.every=0", *overrides]
    first = llaunch("run", *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [run] = run_dirs(out_dir)
    evals = _rows(run, "eval")
    assert evals[0]["loss"] - evals[-1]["loss"] >= least_drop, evals
    assert _export_loss(run / "export", shared_cache) == pytest.approx(evals[-1]["loss"], abs=1e-4)
    if "lora" in case:
        assert (run / "export" / "adapter" / "adapter_model.safetensors").is_file()
    if case in CHANGED:
        _assert_only_these_changed(run, args, CHANGED[case])

    if case in EXPORTED:
        _assert_checkpoint_export_is_the_run_export(run, "lora" in case, tmp_path)
    if case in RESUMED:
        _assert_resume_is_exact(run, tmp_path)


def _assert_resume_is_exact(run: Path, tmp_path: Path) -> None:
    kept = shutil.copytree(run / "export", tmp_path / "export-uninterrupted")
    shutil.rmtree(run / "checkpoints" / f"step-{STEPS:06d}")
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resumed from {run}/checkpoints/step-{SAVE_EVERY:06d}" in resumed.stdout
    losses: dict[int, list[float]] = {}
    for row in _rows(run, "train"):
        losses.setdefault(row["step"], []).append(row["loss"])
    after = {step: pair for step, pair in losses.items() if step > SAVE_EVERY}
    assert after and all(len(pair) == 2 and pair[0] == pair[1] for pair in after.values()), after
    before, again = _weights(kept), _weights(run / "export")
    assert before.keys() == again.keys()
    assert all(np.array_equal(before[name], again[name]) for name in before)


def _assert_checkpoint_export_is_the_run_export(run: Path, adapters: bool, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    merged = llaunch("export", str(run), "--out", str(tmp_path / "merged"), *(["--merge-lora"] if adapters else []))
    assert merged.returncode == 0, merged.stderr[-3000:]
    expected, got = _weights(run / "export"), _weights(tmp_path / "merged")
    assert expected.keys() == got.keys()
    assert all(np.array_equal(expected[name], got[name]) for name in expected)
    if adapters:  # without --merge-lora: the peft adapter alone, as the run wrote it beside its export
        alone = llaunch("export", str(run), "--out", str(tmp_path / "adapter"))
        assert alone.returncode == 0, alone.stderr[-3000:]
        expected, got = (load_file(d / "adapter_model.safetensors") for d in (run / "export" / "adapter",
                                                                              tmp_path / "adapter"))
        assert expected.keys() == got.keys() and all(np.array_equal(expected[k], got[k]) for k in expected)
    else:
        refused = llaunch("export", str(run), "--merge-lora", "--out", str(tmp_path / "refused"))
        assert refused.returncode == 2 and "no adapter to merge" in refused.stderr


def _assert_only_these_changed(run: Path, args: list[str], prefixes: tuple[str, ...]) -> None:
    """The export differs from the freshly built (seeded) model in exactly the trained blocks' weights."""
    from transformers import AutoTokenizer

    from launcher.recipe import load_recipe
    from launcher.train.model import build_model

    recipe = load_recipe(QUICKSTART, [a for a in args[1:] if not a.startswith("method.")])
    initial = build_model(recipe, AutoTokenizer.from_pretrained(run / "tokenizer")).state_dict()
    trained = _weights(run / "export")
    changed = {name for name, value in trained.items() if not np.array_equal(value, initial[name].numpy())}
    expected = {name for name in trained if name.startswith(prefixes)}
    assert changed == expected, sorted(changed ^ expected)
