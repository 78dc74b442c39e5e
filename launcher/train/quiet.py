"""Keep library noise out of the user's terminal (DeepSpeed's accelerator warning, save/load bars, DCP warnings)."""

from __future__ import annotations

import os
import warnings


def quiet_libraries(cpu: bool) -> None:
    if cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed warns when transformers imports it
    import transformers

    transformers.utils.logging.disable_progress_bar()
    # a one-process run saves with DCP's no_dist on purpose (engines/base.py), which warns at every save
    warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
    # peft asks models a property transformers renamed; nothing for a user to act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated", category=FutureWarning)
