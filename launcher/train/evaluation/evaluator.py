"""Evaluate on every rank, score on rank 0: the eval set is sharded over ranks (rank r takes examples r,
r + world, ...), per-example predictions are gathered to rank 0 (gloo all_gather_object: eval-sized
data), rank 0 computes the metrics and every rank gets them back (early stopping is decided on all).

Every rank runs the same number of batches (a rank with fewer examples repeats a dummy one whose
outputs are dropped), so engines that gather weights inside forward (FSDP2, ZeRO-3) stay in step.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from launcher.train.objectives.base import Objective, to_device


def evaluate(objective: Objective, columns: dict[str, Any], model, generator, *, micro: int,
             max_batches: int | None, rank: int = 0, world: int = 1, device: torch.device | None = None,
             autocast: torch.dtype | None = None) -> dict[str, float]:
    """Metrics of `model` on `columns` (an eval split), the same dict on every rank."""
    device = device or torch.device("cpu")
    size = objective.size(columns)
    mine = np.arange(rank, size, world)
    per_rank = -(-size // world)  # the largest shard: every rank runs as many batches as it needs
    batches = -(-per_rank // micro)
    if max_batches:
        batches = min(batches, max_batches)
    sums: Counter = Counter()
    predictions: list = []
    mixed = (torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext())
    was_training = getattr(model, "training", False)
    model.eval()
    with torch.no_grad(), mixed:
        for b in range(batches):
            indices = mine[b * micro:(b + 1) * micro]
            dummy = len(indices) == 0
            if dummy:
                indices = np.array([0])
            batch = to_device(objective.eval_batch(columns, indices), device)
            output = objective.eval_step(model, generator, batch, indices, columns)
            if not dummy:
                sums.update(output.sums)
                predictions.extend(output.predictions)
    if was_training:
        model.train()
    sums, predictions = _gather(dict(sums), predictions, world)
    result = [None]
    if rank == 0:
        predictions.sort(key=lambda item: item[0])
        result = [objective.metrics(sums, predictions, columns)]
    if world > 1:
        dist.broadcast_object_list(result, src=0)
    return result[0]


def _gather(sums: dict[str, float], predictions: list, world: int) -> tuple[dict[str, float], list]:
    if world == 1:
        return sums, predictions
    gathered: list = [None] * world
    dist.all_gather_object(gathered, (sums, predictions))
    total: Counter = Counter()
    merged: list = []
    for part_sums, part_predictions in gathered:
        total.update(part_sums)
        merged.extend(part_predictions)
    return dict(total), merged


def format_metrics(values: dict[str, float]) -> str:
    """`loss 0.6707  perplexity 1.96  accuracy 0.9531` for progress lines and tables."""
    parts = []
    for name, value in values.items():
        wide = name in ("perplexity", "bleu") or name.startswith("rouge")
        parts.append(f"{name} {value:.2f}" if wide else f"{name} {value:.4f}")
    return "  ".join(parts)
