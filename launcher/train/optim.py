"""AdamW with decoupled weight decay (none on biases and norms) and transformers' LR schedules."""

from __future__ import annotations

import torch
from transformers import get_scheduler

from launcher.recipe.schema import TrainSpec

SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def build_optimizer(model: torch.nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, foreach=True)


def build_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec):
    return get_scheduler(
        SCHEDULES[spec.schedule], optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=spec.max_steps
    )
