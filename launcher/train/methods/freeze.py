"""Layer-wise training: only the top K blocks (and modules matching patterns) train; gradual unfreezing."""

from __future__ import annotations

import re

import torch

from launcher.errors import UserError
from launcher.recipe.schema import FreezeSpec
from launcher.train.methods.blocks import transformer_blocks


def apply_freeze(model: torch.nn.Module, spec: FreezeSpec) -> torch.nn.Module:
    blocks = transformer_blocks(model)
    if spec.train_top_blocks is not None and spec.train_top_blocks > len(blocks):
        raise UserError(f"method.freeze.train_top_blocks={spec.train_top_blocks}: the model has only "
                        f"{len(blocks)} blocks")
    names = [name for name, _ in model.named_parameters(remove_duplicate=False)]
    for pattern in spec.train_patterns:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise UserError(f"method.freeze.train_patterns: {pattern!r} is not a regular expression ({exc})") from None
        if not any(regex.search(name) for name in names):
            raise UserError(f"method.freeze.train_patterns: {pattern!r} matches no parameter of the model; "
                            f"names look like {names[0]}, {names[len(names) // 2]}, {names[-1]}")
    for param in model.parameters():
        param.requires_grad_(False)
    for name, param in model.named_parameters(remove_duplicate=False):
        if any(re.search(pattern, name) for pattern in spec.train_patterns):
            param.requires_grad_(True)
    set_top_blocks_trainable(blocks, spec.train_top_blocks or 0)
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("method.freeze: nothing left to train; set train_top_blocks >= 1 or train_patterns")
    return model


def set_top_blocks_trainable(blocks: torch.nn.ModuleList, k: int) -> None:
    for block in list(blocks)[len(blocks) - k:] if k else []:
        for param in block.parameters():
            param.requires_grad_(True)


class GradualUnfreeze:
    """One more block (from the top down) trains every `every` steps; a pure function of the step."""

    def __init__(self, model: torch.nn.Module, spec: FreezeSpec, max_steps: int):
        self.blocks = transformer_blocks(model)
        self.start, self.every = spec.train_top_blocks or 0, spec.unfreeze_every
        self.current = self.start
        self.final = self.trainable_at(max_steps - 1)

    def trainable_at(self, step: int) -> int:
        return min(len(self.blocks), self.start + step // self.every)

    def eventually_trainable(self) -> list[torch.nn.Parameter]:
        """Parameters of blocks that unfreeze before the run ends (the optimizer must hold them from the start)."""
        return [p for block in list(self.blocks)[len(self.blocks) - self.final:] for p in block.parameters()]

    def apply(self, step: int) -> bool:
        """Set requires_grad for `step`; True if the trainable set changed."""
        wanted = self.trainable_at(step)
        if wanted == self.current:
            return False
        set_top_blocks_trainable(self.blocks, wanted)
        self.current = wanted
        return True
