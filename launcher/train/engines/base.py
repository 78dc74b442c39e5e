"""The one engine interface: wrap, backward, step, sharded state, save/load, the bare model.

The train loop talks only to this; DDP, FSDP2 (both through DCP) and DeepSpeed implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from transformers import PreTrainedModel


class Engine(ABC):
    """Wraps the model it is given and steps the parameters that require grad; knows nothing of methods."""

    model: torch.nn.Module  # what the loop calls forward on
    optimizer: torch.optim.Optimizer
    scheduler: Any
    # forward gathers sharded weights (FSDP2, ZeRO-3): every rank must run the same forwards, so generate()
    # keeps the ranks in step (synced_gpus)
    gathers_weights_in_forward = False

    @abstractmethod
    def accumulating(self, last_micro_batch: bool) -> AbstractContextManager:
        """Context for one micro batch: gradients are synchronised only on the last one."""

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    @abstractmethod
    def step(self) -> torch.Tensor | float:
        """Clip, optimizer step, scheduler step, zero grads; return the gradient norm before clipping.

        A device tensor where the engine has one: reading it waits for the device, so the loop reads
        it only on the steps it logs.
        """

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def trainable_changed(self) -> None:
        """The set of parameters that require grad changed (gradual unfreezing) before the next step."""

    @abstractmethod
    def unwrapped(self) -> PreTrainedModel:
        """The transformers (or peft) model the engine wraps; its weights may be shards."""

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Collective: full weights keyed like unwrapped().state_dict() on rank 0 (CPU), None elsewhere."""
        return self.unwrapped().state_dict()

    def export(self, out: Path, tokenizer, is_main: bool) -> None:
        """Collective (every rank calls it): rank 0 writes a Hugging Face model directory with full weights."""
        from launcher.train.methods.export import export_trained

        state = self.full_state_dict()
        if is_main:
            export_trained(self.unwrapped(), tokenizer, out, state)

    # ---- checkpoints: the engine's own format in step-NNNNNN/ ----
    @abstractmethod
    def save(self, path: Path) -> None: ...

    @abstractmethod
    def load(self, path: Path) -> None: ...

    def async_save(self, path: Path, process_group) -> Future:
        """Stage now, write in the background; a future that is done once this rank's files are.
        Engines whose library writes in line save here and hand back a finished future."""
        self.save(path)
        done: Future = Future()
        done.set_result(None)
        return done


class DCPEngine(Engine):
    """Engines checkpointed through torch.distributed.checkpoint: sharded, reshardable, written async."""

    @abstractmethod
    def sharded_state(self) -> dict[str, Any]:
        """Model and optimizer state as DCP wants it (each rank holds its own shards)."""

    @abstractmethod
    def load_sharded_state(self, state: dict[str, Any]) -> None: ...

    def save(self, path: Path) -> None:
        dcp.save(self.sharded_state(), checkpoint_id=str(path), no_dist=_alone())

    def async_save(self, path: Path, process_group) -> Future:
        return dcp.async_save(self.sharded_state(), checkpoint_id=str(path), process_group=process_group,
                              no_dist=_alone())

    def load(self, path: Path) -> None:
        state = self.sharded_state()
        dcp.load(state, checkpoint_id=str(path), no_dist=_alone())
        self.load_sharded_state(state)


def _alone() -> bool:
    """One process: DCP has nothing to agree on, so it skips its plan exchange. That exchange copies a large
    buffer on a gloo worker thread, which gives that thread an OpenMP team of its own; with more OpenMP
    threads than cores libgomp stops spin-waiting, and every parallel op of the training thread after the
    first checkpoint ran 1.3-2x slower (measured on 2 cores: MiniLM QA 1,700 -> 1,150 tokens/s)."""
    return dist.get_world_size() == 1


class TorchOptimizerEngine(DCPEngine):
    """Engines that step the torch optimizer themselves (DDP, FSDP2): loss scaling, clipping, step, zero.

    Subclasses set self._module, self.optimizer, self.scheduler, self._scaler (None: no loss scaling)
    and self._max_norm.
    """

    def backward(self, loss: torch.Tensor) -> None:
        (self._scaler.scale(loss) if self._scaler else loss).backward()

    def step(self) -> torch.Tensor:
        if self._scaler:
            self._scaler.unscale_(self.optimizer)
        params = [p for p in self._module.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self._max_norm)
        if self._scaler:
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).detach()  # FSDP2: a DTensor
