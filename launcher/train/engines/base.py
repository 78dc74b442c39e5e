"""The one engine interface: wrap, backward, step, sharded state, save/load, the bare model.

The train loop talks only to this; DDP, FSDP2 and DeepSpeed implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from transformers import PreTrainedModel


class Engine(ABC):
    model: torch.nn.Module  # what the loop calls forward on
    optimizer: torch.optim.Optimizer
    scheduler: Any

    @abstractmethod
    def accumulating(self, last_micro_batch: bool) -> AbstractContextManager:
        """Context for one micro batch: gradients are synchronised only on the last one."""

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    @abstractmethod
    def step(self) -> float:
        """Clip, optimizer step, scheduler step, zero grads; return the gradient norm before clipping."""

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    @abstractmethod
    def sharded_state(self) -> dict[str, Any]:
        """Model and optimizer state as DCP wants it (each rank holds its own shards)."""

    @abstractmethod
    def load_sharded_state(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def unwrapped(self) -> PreTrainedModel:
        """The plain transformers model (full weights where the engine shards them)."""

    def save(self, path: Path) -> None:
        dcp.save(self.sharded_state(), checkpoint_id=str(path))

    def load(self, path: Path) -> None:
        state = self.sharded_state()
        dcp.load(state, checkpoint_id=str(path))
        self.load_sharded_state(state)
