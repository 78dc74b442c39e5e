"""AdamW with decoupled weight decay (none on biases and norms) and transformers' LR schedules."""

from __future__ import annotations

import torch
from transformers import get_scheduler

from launcher.recipe.schema import TrainSpec

SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def build_optimizer(model: torch.nn.Module, spec: TrainSpec, fused: bool = False) -> torch.optim.Optimizer:
    """`fused`: torch's single-kernel AdamW for plain tensors (5x the foreach one for 22M parameters on CPU,
    and faster on CUDA); FSDP2's DTensor parameters keep foreach."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if fused:
        return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, fused=True)
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, foreach=True)


def build_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec):
    return get_scheduler(
        SCHEDULES[spec.schedule], optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=spec.max_steps
    )
