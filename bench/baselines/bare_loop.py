"""The baseline: a hand-written PyTorch DDP loop on the same packed blocks, model, batch and optimizer.

    torchrun --nproc-per-node P bench/baselines/bare_loop.py --data train.npy --config EXPORT_DIR --steps N
Prints one JSON line on rank 0: steady-state tokens/s from the end of step --skip to the last step.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import AutoConfig, AutoModelForCausalLM, get_cosine_schedule_with_warmup

import arguments  # bench/baselines/arguments.py: the script's own directory is on sys.path


def main() -> None:
    args = arguments.parse()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    config = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    model = DistributedDataParallel(AutoModelForCausalLM.from_config(config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, foreach=True)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 20, args.steps)
    blocks = np.load(args.data, mmap_mode="r")
    order = np.random.default_rng([0, 0]).permutation(len(blocks))
    global_batch = args.micro_batch * world
    model.train()
    marks = {}
    for step in range(args.steps):
        start = (step * global_batch + rank * args.micro_batch) % (len(order) - args.micro_batch)
        batch = torch.from_numpy(blocks[order[start:start + args.micro_batch]].astype(np.int64))
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        if step + 1 in (args.skip, args.steps):
            marks[step + 1] = time.time()
    tokens = (args.steps - args.skip) * global_batch * blocks.shape[1]
    if rank == 0:
        print(json.dumps({"tokens_per_s": tokens / (marks[args.steps] - marks[args.skip])}))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
