"""The one table of dtype names: model.dtype, export --dtype, qlora compute dtype and parallel.mixed_precision."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def compute_dtype(mixed_precision: str) -> torch.dtype | None:
    """The autocast dtype of parallel.mixed_precision; None for fp32 (no autocast)."""
    dtype = DTYPES[mixed_precision]
    return None if dtype is torch.float32 else dtype
