"""DistributedDataParallel: full replicas, gradients all-reduced on the last micro batch."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedModel

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine
from launcher.train.optim import build_optimizer, build_scheduler


class DDPEngine(Engine):
    def __init__(self, model: PreTrainedModel, recipe: Recipe, dist: Dist):
        self._module = model.to(dist.device)
        device_ids = [dist.local_rank] if dist.device.type == "cuda" else None
        self.model = DistributedDataParallel(self._module, device_ids=device_ids)
        self.optimizer = build_optimizer(self._module, recipe.train)
        self.scheduler = build_scheduler(self.optimizer, recipe.train)
        self._max_norm = recipe.train.max_grad_norm or float("inf")

    def accumulating(self, last_micro_batch: bool):
        return contextlib.nullcontext() if last_micro_batch else self.model.no_sync()

    def step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self._module.parameters(), self._max_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def sharded_state(self) -> dict[str, Any]:
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        return {"model": model_state, "optim": optim_state}

    def load_sharded_state(self, state: dict[str, Any]) -> None:
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def unwrapped(self) -> PreTrainedModel:
        return self._module
