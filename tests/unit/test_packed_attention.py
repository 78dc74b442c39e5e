"""Packed rows: each example's loss through FlexAttention's document mask (and through the per-example SDPA loop)
equals its loss alone, in fp32 on CPU. FlexAttention has no backward on CPU in torch 2.13 (it raises), so the CPU
check is the forward; training through it is the GPU check's (bench/gpu_check.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorWithFlattening, LlamaConfig, LlamaForCausalLM

from launcher.train.packed_attention import FORCE, packed_path, use_packed_attention

pytestmark = pytest.mark.unit

LENGTHS = (5, 37, 12, 60, 1 + 128)  # the last one crosses FlexAttention's 128-token blocks


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, max_position_embeddings=256)  # GQA: 2 kv heads
    model = LlamaForCausalLM(config).eval()
    use_packed_attention(model)
    return model


def _per_example_losses(model, examples: list[list[int]]) -> list[float]:
    row = DataCollatorWithFlattening(return_tensors="pt", return_flash_attn_kwargs=True)(
        [{"input_ids": ids, "labels": ids} for ids in examples])
    with torch.no_grad():
        logits = model(**{k: v for k, v in row.items() if k != "labels"}, use_cache=False).logits[0]
    token_loss = torch.nn.functional.cross_entropy(logits[:-1], row["labels"][0, 1:], reduction="none",
                                                   ignore_index=-100)
    edges = row["cu_seq_lens_q"].tolist()
    return [token_loss[start:end - 1].mean().item() for start, end in zip(edges, edges[1:])]


@pytest.mark.parametrize("path", ["flex", "loop"])
def test_packed_loss_of_each_example_equals_its_loss_alone(model, monkeypatch, path):
    monkeypatch.setenv(FORCE, path)
    generator = torch.Generator().manual_seed(1)
    examples = [torch.randint(0, 300, (n,), generator=generator).tolist() for n in LENGTHS]
    packed = _per_example_losses(model, examples)
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item() for ids in examples]
    assert packed == pytest.approx(alone, abs=1e-6)


def test_the_path_each_device_takes(monkeypatch):
    monkeypatch.delenv(FORCE, raising=False)
    assert packed_path("cpu", torch.float32) == packed_path("cpu", torch.bfloat16) == "loop"
    assert packed_path("cuda", torch.float32) == "flex"  # flash-attn computes in bf16/fp16 only
    try:
        import flash_attn  # noqa: F401
        with_flash = "flash"
    except ImportError:
        with_flash = "flex"
    assert packed_path("cuda", torch.bfloat16) == with_flash
