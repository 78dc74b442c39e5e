"""Mixed precision for engines that do not do it themselves (DDP): autocast forward, fp16 loss scaling."""

from __future__ import annotations

import contextlib

import torch

from launcher.train.dtypes import compute_dtype

class Autocast(torch.nn.Module):
    """Runs the wrapped module's forward under torch.autocast (a no-op wrapper for fp32)."""

    def __init__(self, module: torch.nn.Module, mixed_precision: str, device: torch.device):
        super().__init__()
        self.module = module
        self._dtype = compute_dtype(mixed_precision)
        self._device_type = device.type

    def forward(self, *args, **kwargs):
        context = (torch.autocast(self._device_type, dtype=self._dtype) if self._dtype is not None
                   else contextlib.nullcontext())
        with context:
            return self.module(*args, **kwargs)


def grad_scaler(mixed_precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 needs dynamic loss scaling; bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if mixed_precision == "fp16" else None
