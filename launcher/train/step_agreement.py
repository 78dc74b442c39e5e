"""The one collective of a training step beside the engine's (launcher/train/trainer.py uses it)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from launcher.train.distributed import Dist
from launcher.train.stop import StopRequest


class StepAgreement:
    """The one collective of a step beside the engine's: the step's target count, any stop request, and each
    rank's number of micro batches (they differ under a token budget).

    Started before the first forward and waited for before the first backward, so its latency hides behind
    the forward. The count stays on the device; the stop flag is copied to pinned host memory behind the
    all-reduce and read one step later, when that copy has long finished, so all ranks stop at the same
    step, one after the request, and the host never waits for the device to drain (on a GPU a plain read
    would stall the kernel queue at every step).
    """

    def __init__(self, stop: StopRequest, d: Dist):
        self.stop, self.d = stop, d
        self._values: torch.Tensor | None = None
        self._work = None
        self._flag: torch.Tensor | None = None  # the stop flag on the host, once the all-reduce is done
        self._copied = None  # on CUDA: the event after the flag's copy to the host

    def start(self, count: int, micro_batches: int) -> None:
        values = [count, int(self.stop.requested)] + [0] * self.d.world_size
        values[2 + self.d.rank] = micro_batches  # summed: every rank's count at its own place
        self._values = torch.tensor(values, dtype=torch.int64, device=self.d.device)
        self._work = dist.all_reduce(self._values, async_op=True) if self.d.world_size > 1 else None
        self._flag = self._copied = None

    def total(self) -> torch.Tensor:
        self._arrived()
        return self._values[0].clamp(min=1)

    def _arrived(self) -> None:
        """Let the device stream wait for the all-reduce (NCCL: no host wait) and queue the flag's copy."""
        if self._flag is not None:
            return
        if self._work is not None:
            self._work.wait()
            self._work = None
        if self._values.is_cuda:
            self._flag = torch.empty(1, dtype=torch.int64, pin_memory=True)
            self._flag.copy_(self._values[1:2], non_blocking=True)
            self._copied = torch.cuda.Event()
            self._copied.record()
        else:
            self._flag = self._values[1:2]

    def most_micro_batches(self) -> int:
        """The largest number of micro batches any rank has this step (a host read: waits for the device)."""
        self._arrived()
        return int(self._values[2:].max())

    def stop_agreed(self) -> bool:
        if self._values is None:
            return False
        self._arrived()
        if self._copied is not None:
            self._copied.synchronize()
        return bool(self._flag[0])

    def settle(self, failed: bool) -> None:
        """Finish the all-reduce in flight before the collectives that follow the loop (none after a failure)."""
        if not failed and self._values is not None:
            self._arrived()
