"""The packed-attention kernels side by side (bench/packing.py --attention; bench/gpu_check.py on a GPU).

Same model as bench/recipes/packing.yaml, rows of 8 examples of 30-300 tokens, each path timed over the same
rows, paths alternating every round; tokens/s of the step (CPU: forward; CUDA: forward + backward, bf16).
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import torch
from common import ROOT, medians
from transformers import DataCollatorWithFlattening, LlamaConfig, LlamaForCausalLM

from launcher.recipe import load_recipe
from launcher.train.packed_attention import FORCE, use_packed_attention

RECIPE = ROOT / "bench" / "recipes" / "packing.yaml"
VOCAB = 320  # the recipe's trained tokenizer


def _rows(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    collate = DataCollatorWithFlattening(return_tensors="pt", return_flash_attn_kwargs=True)
    rows = []
    for _ in range(count):
        examples = [[rng.randrange(VOCAB) for _ in range(rng.randrange(30, 300))] for _ in range(8)]
        rows.append((examples, collate([{"input_ids": ids, "labels": ids} for ids in examples])))
    return rows


def _model(device: torch.device) -> LlamaForCausalLM:
    settings = {k: v for k, v in load_recipe(RECIPE).model.config.items() if k != "type"}
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**settings, vocab_size=VOCAB)).to(device)
    use_packed_attention(model)
    return model


def _autocast(device: torch.device):
    return torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _step(model, row: dict, device: torch.device, train: bool) -> None:
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in row.items()}
    with _autocast(device), (contextlib.nullcontext() if train else torch.no_grad()):
        loss = model(**batch, use_cache=False).loss
    if train:
        loss.backward()


def _loss_gap(model, examples: list[list[int]], row: dict, device: torch.device) -> float:
    """Largest |per-example loss in the packed row - its loss alone|."""
    with torch.no_grad(), _autocast(device):
        logits = model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in row.items()
                          if k != "labels"}, use_cache=False).logits[0].float()
        token_loss = torch.nn.functional.cross_entropy(logits[:-1], row["labels"][0, 1:].to(device),
                                                       reduction="none", ignore_index=-100)
        edges = row["cu_seq_lens_q"].tolist()
        gaps = []
        for ids, start, end in zip(examples, edges, edges[1:]):
            alone = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([ids], device=device)).loss
            gaps.append(abs(token_loss[start:end - 1].mean().item() - alone.item()))
    return max(gaps)


def _paths(device: torch.device) -> list[str]:
    paths = ["loop", "flex"]
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401
            paths.append("flash")
        except ImportError:
            pass
    return paths


def compare(rounds: int, device: torch.device | None = None) -> dict:
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = device.type == "cuda"
    model, rows = _model(device), _rows(6)
    tokens = sum(row["input_ids"].numel() for _, row in rows)
    samples: dict[str, list[float]] = {path: [] for path in _paths(device)}
    gaps = {}
    for round_no in range(rounds + 1):  # round 0 warms up (compiles on CUDA), untimed
        for path in samples:
            os.environ[FORCE] = path
            if round_no == 0:
                gaps[path] = max(_loss_gap(model, examples, row, device) for examples, row in rows)
            started = time.perf_counter()
            for _, row in rows:
                _step(model, row, device, train)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_no:
                samples[path].append(tokens / (time.perf_counter() - started))
                print(f"  round {round_no}/{rounds}  {path:<6} {samples[path][-1]:,.0f} tokens/s", flush=True)
    os.environ.pop(FORCE)
    speed = medians(samples)
    for path in samples:
        print(f"{path:<6} {speed[path]:>10,.0f} tokens/s ({speed[path] / speed['loop']:.2f}x the loop), "
              f"largest per-example loss gap {gaps[path]:.2e}")
    return {"device": torch.cuda.get_device_name(device) if train else "cpu", "step": "forward + backward, bf16"
            if train else "forward, fp32", "rows": len(rows), "tokens": tokens, "median_tokens_per_s": speed,
            "samples": samples, "max_loss_gap": gaps}
