"""Host-device syncs inside training steps, counted on request (bench/gpu_check.py sets LLAUNCH_SYNC_CHECK=1).

A sync stops the host from queueing the next kernels until the device has caught up, so a GPU idles while
Python runs. Steps that log, evaluate or save read values on purpose; the others should not wait at all.
With the variable set on a CUDA device, the steps after the first few that end on no log step run under
torch's sync debug mode (`torch.cuda.set_sync_debug_mode("warn")`), which warns at every synchronizing
call; the warnings are counted here and the result is one log line at the end of the run:
`sync check: N synchronizing call(s) in M steps` with where the first one was made.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

ENV = "LLAUNCH_SYNC_CHECK"
WARM_STEPS = 3  # the first steps allocate, compile and fill caches


class SyncCheck:
    def __init__(self, device: torch.device, log):
        self.enabled = os.environ.get(ENV) == "1" and device.type == "cuda"
        self.log = log
        self.steps = self.calls = 0
        self.first: str | None = None

    @contextlib.contextmanager
    def step(self, step: int, logs: bool):
        """Around step `step` (1-based); `logs`: it ends on a log step (it may read values)."""
        if not self.enabled or step <= WARM_STEPS or logs:
            yield
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchronizing" in str(w.message)]
        self.steps += 1
        self.calls += len(syncs)
        if syncs and self.first is None:
            self.first = f"{syncs[0].filename}:{syncs[0].lineno}: {syncs[0].message}"

    def close(self) -> None:
        if self.enabled:
            where = f"; the first: {self.first}" if self.first else ""
            self.log(f"sync check: {self.calls} synchronizing call(s) in {self.steps} steps{where}")


