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
from launcher.train.engines.base import TorchOptimizerEngine
from launcher.train.engines.precision import Autocast, grad_scaler
from launcher.train.engines.trainable_state import init_optimizer_state, load_trainable_state, trainable_state
from launcher.train.optim import build_optimizer, build_scheduler


class DDPEngine(TorchOptimizerEngine):
    def __init__(self, model: PreTrainedModel, recipe: Recipe, dist: Dist):
        quantized = getattr(model, "is_quantized", False) or getattr(model, "is_loaded_in_4bit", False)
        self._module = model if quantized else model.to(dist.device)  # bitsandbytes placed it already
        self._dist, self._precision = dist, recipe.parallel.mixed_precision
        self._unfreeze = _gradual_unfreeze(model, recipe)
        self._wrap()
        with _all_trainable(self._unfreeze.eventually_trainable() if self._unfreeze else []):
            self.optimizer = build_optimizer(self._module, recipe.train, fused=True)
        self._adapters_only = recipe.method.type in ("lora", "qlora")  # the frozen base is rebuilt on resume
        if self._unfreeze or self._adapters_only:
            init_optimizer_state(self.optimizer)  # every key exists before the first step: checkpoints load into it
        self.scheduler = build_scheduler(self.optimizer, recipe.train)
        self._max_norm = recipe.train.max_grad_norm or float("inf")
        self._scaler = grad_scaler(self._precision, dist.device)

    def _wrap(self) -> None:
        device_ids = [self._dist.local_rank] if self._dist.device.type == "cuda" else None
        self._ddp = DistributedDataParallel(self._module, device_ids=device_ids, gradient_as_bucket_view=True)
        self.model = Autocast(self._ddp, self._precision, self._dist.device)

    def begin_step(self, step: int) -> None:
        if self._unfreeze and self._unfreeze.apply(step):
            self._wrap()  # DDP registers the parameters that require grad when it wraps

    def accumulating(self, last_micro_batch: bool):
        return contextlib.nullcontext() if last_micro_batch else self._ddp.no_sync()

    def sharded_state(self) -> dict[str, Any]:
        if self._adapters_only:
            return trainable_state(self._module, self.optimizer)
        model_state, optim_state = get_state_dict(self._module, self.optimizer)
        return {"model": model_state, "optim": optim_state}

    def load_sharded_state(self, state: dict[str, Any]) -> None:
        if self._adapters_only:
            return load_trainable_state(self.optimizer, state)
        set_state_dict(self._module, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def unwrapped(self) -> PreTrainedModel:
        return self._module


def _gradual_unfreeze(model, recipe: Recipe):
    spec = recipe.method.freeze
    if recipe.method.type != "freeze" or spec.unfreeze_every is None:
        return None
    from launcher.train.methods.freeze import GradualUnfreeze

    return GradualUnfreeze(model, spec, recipe.train.max_steps)


@contextlib.contextmanager
def _all_trainable(params: list[torch.nn.Parameter]):
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)

