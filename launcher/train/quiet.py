"""Keep library noise out of the user's terminal (DeepSpeed's accelerator warning, save/load bars, DCP warnings)."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries(cpu: bool, quantized: bool = False) -> None:
    """`quantized`: the run has bitsandbytes layers, so its kernel warnings concern it."""
    if not quantized:
        # peft imports bitsandbytes for any LoRA, and bitsandbytes warns at import on AVX512-BF16 CPUs that
        # the `kernels` package for its 4-bit CPU matmul is missing: only 4-bit layers would use it
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    if cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed warns when transformers imports it
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # a one-process run saves with DCP's no_dist on purpose (engines/base.py), which warns at every save
    warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
    # peft asks models a property transformers renamed; nothing for a user to act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated", category=FutureWarning)
