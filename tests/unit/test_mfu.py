"""MFU: FLOPs per token from the config against a count by hand; the peak by device name; status and report."""

from __future__ import annotations

import json

import pytest

from launcher.backends.status import run_status, table
from launcher.estimate.shapes import model_shape
from launcher.recipe import load_recipe
from launcher.report import summary
from launcher.rundir import RunDir
from launcher.train.mfu import flops_per_token, mfu, peak_tflops
from tests.conftest import QUICKSTART

pytestmark = pytest.mark.unit

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 1000}


def test_flops_per_token_of_a_tiny_llama_counted_by_hand():
    # per layer q, k, v, o: 4 x 64x64 = 16,384; gate, up, down: 3 x 64x128 = 24,576 -> 40,960; 2 layers 81,920;
    # untied output head 1000x64 = 64,000 (the input embedding is a lookup): N = 145,920
    n = 145_920
    attention = 12 * 2 * 64 * 128  # 12 * layers * hidden * seq_len = 196,608
    assert flops_per_token(model_shape(TINY), 128) == 6 * n + attention == 1_072_128
    # LoRA: the frozen weights get no weight gradient (4N), the 1,000 adapter weights do (2 each)
    assert flops_per_token(model_shape(TINY), 128, trainable=1000) == 4 * n + 2 * 1000 + attention


def test_a_tied_output_head_counts_the_embedding_once():
    tied = flops_per_token(model_shape({**TINY, "tie_word_embeddings": True}), 128)
    assert tied == flops_per_token(model_shape(TINY), 128)  # same matmuls, the table serves as the head


def test_mfu_of_a_1b_llama_on_h100s():
    """Llama 3.2 1B's shape at 2,048 tokens: N = 1.236e9 (tied head), 8.22e9 FLOPs per token;
    8 H100s at 989 TFLOP/s doing 400k tokens/s run at 41.6%."""
    shape = model_shape({"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                         "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                         "vocab_size": 128256, "tie_word_embeddings": True})
    per_token = flops_per_token(shape, 2048)
    n = 16 * (2 * 2048 * 2048 + 2 * 512 * 2048 + 3 * 2048 * 8192) + 128256 * 2048
    assert per_token == 6 * n + 12 * 16 * 2048 * 2048
    assert mfu(400_000, per_token, peak_tflops("NVIDIA H100 80GB HBM3"), 8) == pytest.approx(0.4156, abs=1e-4)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
                                        ("NVIDIA H200", 989), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L40S", 362),
                                        ("NVIDIA L4", 121), ("NVIDIA A10", 125), ("Some Future GPU", None)])
def test_peak_by_device_name(name, peak):
    assert peak_tflops(name) == peak


def _run_with_rows(tmp_path, rows) -> RunDir:
    run = RunDir.create(load_recipe(QUICKSTART, [f"output.dir={tmp_path}", "train.max_steps=30"]))
    run.metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run


def test_status_and_report_show_mfu_where_logged(tmp_path):
    rows = [{"kind": "train", "step": s, "time": float(s), "loss": 2.0, "tokens_per_s": tps, "mfu": m,
             "consumed_samples": s * 8} for s, tps, m in ((10, 100.0, 0.05), (20, 4000.0, 0.41), (30, 4200.0, 0.43))]
    run = _run_with_rows(tmp_path, rows)
    status = run_status(run, ask_scheduler=False)
    assert status["mfu"] == 0.43
    header, line = table([status]).splitlines()
    assert header.split()[5:7] == ["LOSS", "MFU"] and "43.0%" in line.split()
    # the first window (start-up) is left out of the medians
    assert "speed      4,200 tokens/s, MFU 43.0% (median of 2 logged window(s))" in summary(run).splitlines()


def test_no_mfu_column_for_runs_without_a_known_peak(tmp_path):
    run = _run_with_rows(tmp_path, [{"kind": "train", "step": 10, "time": 1.0, "loss": 2.0, "tokens_per_s": 900.0}])
    status = run_status(run, ask_scheduler=False)
    assert status["mfu"] is None and "MFU" not in table([status])
    assert "speed      900 tokens/s (median of 1 logged window(s))" in summary(run).splitlines()
