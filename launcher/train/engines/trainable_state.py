"""Checkpoint state of the trainable parameters only (LoRA / QLoRA adapters), keyed by parameter name.

The frozen base is rebuilt from the recipe on resume, so adapter checkpoints stay small. It is also
the only way to checkpoint a bitsandbytes 8-bit base: DCP's get_state_dict looks every state_dict key
up as a module attribute, and Linear8bitLt's `SCB` entry is none.
"""

from __future__ import annotations

from typing import Any

import torch

HYPER = ("lr", "initial_lr", "betas", "weight_decay", "eps")


def init_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """AdamW's own fresh state (step 0, zero moments) for every parameter, as its first step would create."""
    for group in optimizer.param_groups:
        on_device = group.get("fused") or group.get("capturable")  # where AdamW itself would put the step
        for p in group["params"]:
            if not optimizer.state[p]:
                step = torch.zeros((), dtype=torch.float32, device=p.device if on_device else "cpu")
                optimizer.state[p] = {"step": step, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}


def trainable_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    names = {p: n for n, p in module.named_parameters() if p.requires_grad}
    return {
        "model": {n: p.detach() for p, n in names.items()},
        "optim": {
            "state": {names[p]: dict(s) for p, s in optimizer.state.items() if p in names},
            "groups": {str(i): {k: g[k] for k in HYPER if k in g} for i, g in enumerate(optimizer.param_groups)},
        },
    }


def load_trainable_state(optimizer: torch.optim.Optimizer, loaded: dict[str, Any]) -> None:
    """Tensors were loaded in place by DCP; put the scalars (step counts, group hyperparameters) back."""
    for i, group in enumerate(optimizer.param_groups):
        group.update(loaded["optim"]["groups"][str(i)])
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
