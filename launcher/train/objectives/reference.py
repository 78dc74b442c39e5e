"""The reference model's log-probs for dpo, never a second model in memory.

- adapter: the policy itself with its LoRA adapter disabled (peft's `disable_adapter()`), per batch.
- precomputed: the starting model's log-probs of every pair (train and eval), computed once, at the first
  pass of a run (before any step changes the weights), by every rank for its share in the same number of
  forwards (so FSDP2 and ZeRO-3 gather weights in step), gathered, and written by rank 0 next to the
  prepared data (`reference-<model key>.<split>.npy`, the key naming the starting weights). Later starts of
  the run (resume, requeue) read them there; so does any run on the same data and starting model. Keep the
  data cache while a run lives: a resume that finds them gone stops with one line (the weights it resumed are
  not the starting ones, so computing them again would train against the wrong reference).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from launcher.data.cache_index import lookup
from launcher.data.fingerprint import digest
from launcher.data.store import load_split
from launcher.errors import RunError

SPLITS = ("train", "eval")


def adapter_disabled(model: torch.nn.Module):
    """The context in which `model` (a peft model, maybe inside DDP or DeepSpeed) runs as its base."""
    inner = model
    while not hasattr(inner, "disable_adapter") and hasattr(inner, "module"):
        inner = inner.module
    return inner, inner.disable_adapter()


class PrecomputedReference:
    """{split: array (pairs, 2) of the reference's summed log-probs of chosen and rejected}, made once."""

    def __init__(self, recipe, batch_of: Callable, logps: Callable):
        self.recipe, self.batch_of, self.logps = recipe, batch_of, logps
        self.table: dict[str, np.ndarray] | None = None
        self.resumed_at = 0  # the step the weights in hand come from (0: the starting weights)

    def lookup(self, model: torch.nn.Module, split: str, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.table is None:
            self.table = self._load_or_compute(model, pairs.device)
        values = torch.from_numpy(np.asarray(self.table[split][pairs.cpu().numpy()])).to(pairs.device)
        return values[:, 0], values[:, 1]

    def _load_or_compute(self, model, device) -> dict[str, np.ndarray]:
        prepared = lookup(self.recipe)
        if prepared is None:
            raise RunError("dpo.reference=precomputed: the reference log-probs live beside the run's prepared data, "
                           "which this cache does not hold; evaluate a dpo run by its run directory (llaunch eval RUN_DIR)")
        meta = json.loads((prepared / "meta.json").read_text())
        files = {split: prepared / f"reference-{self._model_key()}.{split}.npy" for split in meta["columns"]}
        if all(path.is_file() for path in files.values()):
            return {split: np.load(path) for split, path in files.items()}
        if self.resumed_at:
            missing = next(path for path in files.values() if not path.is_file())
            raise RunError(f"dpo.reference=precomputed: {missing} is gone and this run resumed at step {self.resumed_at}, "
                           "past the starting weights the reference must come from; restore the data cache "
                           "(output.cache_dir) or start a new run")
        table = {split: self._compute(model, load_split(prepared, split, meta["columns"][split]), device)
                 for split in files}
        if not dist.is_initialized() or dist.get_rank() == 0:
            for split, path in files.items():
                _save(path, table[split])
        return table

    def _model_key(self) -> str:
        """What the starting weights depend on: the model directory's files, or the config and seed."""
        r = self.recipe
        files = []
        if r.model.path is not None:
            files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(r.model.path).iterdir()
                           if p.is_file())
        return digest(r.model.path, files, r.model.config, r.model.dtype, r.train.seed, r.method.type,
                      r.parallel.mixed_precision)

    @torch.no_grad()
    def _compute(self, model, columns, device) -> np.ndarray:
        size = len(columns["chosen_ids"])
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        micro = self.recipe.train.micro_batch_size
        mine = np.arange(rank, size, world)
        batches = -(-(-(-size // world)) // micro)  # every rank runs as many forwards as the largest share
        was_training = model.training
        model.eval()
        found: dict[int, tuple[float, float]] = {}
        for b in range(batches):
            indices = mine[b * micro:(b + 1) * micro]
            ids = indices if len(indices) else np.array([0])  # a repeated pair keeps the forwards in step
            batch = {k: v.to(device) for k, v in self.batch_of(columns, ids).items()}
            chosen, rejected = self.logps(model, batch)
            for i, c, r in zip(indices.tolist(), chosen.tolist(), rejected.tolist()):
                found[i] = (c, r)
        if was_training:
            model.train()
        if world > 1:
            parts: list = [None] * world
            dist.all_gather_object(parts, found)
            found = {k: v for part in parts for k, v in part.items()}
        return np.array([found[i] for i in range(size)], dtype=np.float64)


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
