"""FSDP2: `fully_shard` on every transformer block and on the root; params, grads and optimizer sharded.

Mixed precision through MixedPrecisionPolicy (compute in bf16/fp16, reduce in fp32), optional CPU
offload (params, grads and the optimizer step on the CPU), checkpoints through DCP like DDP.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from transformers import PreTrainedModel

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import TorchOptimizerEngine
from launcher.train.dtypes import compute_dtype
from launcher.train.engines.precision import grad_scaler
from launcher.train.methods import Method
from launcher.train.methods.blocks import transformer_blocks
from launcher.train.optim import build_optimizer, build_scheduler


class FSDP2Engine(TorchOptimizerEngine):
    gathers_weights_in_forward = True

    def __init__(self, model: PreTrainedModel, method: Method, recipe: Recipe, dist: Dist):
        p = recipe.parallel
        offload = p.offload == "params"
        if not offload:
            model = model.to(dist.device)
        mesh = init_device_mesh(dist.device.type, (dist.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=compute_dtype(p.mixed_precision), reduce_dtype=torch.float32)
        policy = CPUOffloadPolicy(pin_memory=dist.device.type == "cuda") if offload else OffloadPolicy()
        for block in transformer_blocks(model):
            fully_shard(block, mesh=mesh, mp_policy=mp, offload_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=policy)
        self.model = self._module = model
        self.optimizer = build_optimizer(method.optimizer_parameters(model), recipe.train)
        self.scheduler = build_scheduler(self.optimizer, recipe.train)
        self._max_norm = recipe.train.max_grad_norm or float("inf")
        self._scaler = grad_scaler(p.mixed_precision, dist.device)

    def accumulating(self, last_micro_batch: bool):
        return contextlib.nullcontext()  # reduce-scatter every micro batch: grads stay sharded

    def sharded_state(self) -> dict[str, Any]:
        model_state, optim_state = get_state_dict(self._module, self.optimizer)
        return {"model": model_state, "optim": optim_state}

    def load_sharded_state(self, state: dict[str, Any]) -> None:
        set_state_dict(self._module, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(self._module, options=options)  # collective: gathers shard by shard
        return state or None

    def unwrapped(self) -> PreTrainedModel:
        return self._module
