"""DistributedDataParallel: full replicas, gradients all-reduced on the last micro batch.

A world of one process trains the bare module: DDP's wrapper would only cost time (9% of a 7M-parameter
model's throughput on CPU) for an all-reduce with nobody."""

from __future__ import annotations

import contextlib
from typing import Any

from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedModel

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import TorchOptimizerEngine
from launcher.train.engines.precision import Autocast, grad_scaler
from launcher.train.engines.trainable_state import init_optimizer_state, load_trainable_state, trainable_state
from launcher.train.methods import Method
from launcher.train.optim import build_optimizer, build_scheduler


class DDPEngine(TorchOptimizerEngine):
    def __init__(self, model: PreTrainedModel, method: Method, recipe: Recipe, dist: Dist):
        quantized = getattr(model, "is_quantized", False) or getattr(model, "is_loaded_in_4bit", False)
        self._module = model if quantized else model.to(dist.device)  # bitsandbytes placed it already
        self._dist, self._precision = dist, recipe.parallel.mixed_precision
        self._wrap()
        self.optimizer = build_optimizer(method.optimizer_parameters(self._module), recipe.train, fused=True)
        # every state key exists before the first step, also for parameters that start training later:
        # checkpoints load into it
        init_optimizer_state(self.optimizer)
        self._trainable_only = method.checkpoints_trainable_only
        self.scheduler = build_scheduler(self.optimizer, recipe.train)
        self._max_norm = recipe.train.max_grad_norm or float("inf")
        self._scaler = grad_scaler(self._precision, dist.device)

    def _wrap(self) -> None:
        self._ddp = None
        if self._dist.world_size > 1:
            device_ids = [self._dist.local_rank] if self._dist.device.type == "cuda" else None
            # no buffer sync before every forward (only at wrap): transformers' buffers (rotary frequencies,
            # position ids) stay equal on every rank, and a forward that waits on nobody is what slow_ranks.py compares
            self._ddp = DistributedDataParallel(self._module, device_ids=device_ids, gradient_as_bucket_view=True,
                                                forward_sync_buffers=False)
        self.model = Autocast(self._ddp or self._module, self._precision, self._dist.device)

    def trainable_changed(self) -> None:
        self._wrap()  # DDP registers the parameters that require grad when it wraps

    def accumulating(self, last_micro_batch: bool):
        return contextlib.nullcontext() if last_micro_batch or not self._ddp else self._ddp.no_sync()

    def sharded_state(self) -> dict[str, Any]:
        if self._trainable_only:
            return trainable_state(self._module, self.optimizer)
        model_state, optim_state = get_state_dict(self._module, self.optimizer)
        return {"model": model_state, "optim": optim_state}

    def load_sharded_state(self, state: dict[str, Any]) -> None:
        if self._trainable_only:
            return load_trainable_state(self.optimizer, state)
        set_state_dict(self._module, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def unwrapped(self) -> PreTrainedModel:
        return self._module
