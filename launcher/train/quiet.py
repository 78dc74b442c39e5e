"""Keep library noise out of the user's terminal (DeepSpeed's accelerator warning, save/load bars)."""

from __future__ import annotations

import os


def quiet_libraries(cpu: bool) -> None:
    if cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed warns when transformers imports it
    import transformers

    transformers.utils.logging.disable_progress_bar()
