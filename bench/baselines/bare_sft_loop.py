"""The SFT throughput baseline: a hand-written PyTorch loop over the examples llaunch prepared (its cache entry's
input_ids/labels), in the order of positions the benchmark gives, each micro batch padded to its longest, with
the same model, AdamW, clipping and schedule as the llaunch run.

    python bench/baselines/bare_sft_loop.py --data CACHE_ENTRY --model MODEL_DIR --order order.npy --steps N
Prints one JSON line: non-pad tokens/s from the end of step --skip to the last step.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup


def ragged(entry: Path, column: str) -> list[np.ndarray]:
    flat, offsets = np.load(entry / f"train.{column}.npy"), np.load(entry / f"train.{column}.offsets.npy")
    return [flat[start:end] for start, end in itertools.pairwise(offsets)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, type=Path, help="the cache entry llaunch prepared")
    parser.add_argument("--model", required=True)
    parser.add_argument("--order", required=True, help="a .npy of example indices, micro batch after micro batch")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    input_ids, labels = ragged(args.data, "input_ids"), ragged(args.data, "labels")
    order = np.load(args.order)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    pad = model.config.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0, foreach=True)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, args.steps)
    model.train()
    tokens, marks = 0, {}
    for step in range(args.steps):
        batch = order[step * args.micro_batch:(step + 1) * args.micro_batch]
        longest = max(len(input_ids[i]) for i in batch)
        ids = torch.tensor(np.stack([np.pad(input_ids[i], (0, longest - len(input_ids[i])), constant_values=pad)
                                     for i in batch]), dtype=torch.long)
        targets = torch.tensor(np.stack([np.pad(labels[i], (0, longest - len(labels[i])), constant_values=-100)
                                         for i in batch]), dtype=torch.long)
        lengths = torch.tensor([len(input_ids[i]) for i in batch])
        attention = (torch.arange(longest)[None, :] < lengths[:, None]).long()
        loss = model(input_ids=ids, attention_mask=attention, labels=targets).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        if step + 1 > args.skip:
            tokens += int(lengths.sum())
        if step + 1 in (args.skip, args.steps):
            marks[step + 1] = time.time()
    print(json.dumps({"tokens_per_s": tokens / (marks[args.steps] - marks[args.skip])}))


if __name__ == "__main__":
    main()
