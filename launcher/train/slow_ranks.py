"""Slow ranks: each rank's own compute time per step over a log window, summed into the log step's one
all-reduce (no collective of its own, none per step); a rank slower than `factor` x the median of all
ranks for `windows` log windows in a row is named with its host, so the user can drain that node.

A whole step takes as long on every rank (the fast ones wait for the slow one in the gradient all-reduce),
so what is compared is the forward time, where DDP and ZeRO-1/2 wait on nobody (DDP does not broadcast
buffers: engines/ddp.py). Under FSDP2 and ZeRO-3 the forward gathers weights, so waits blur it there."""

from __future__ import annotations

import contextlib
import socket
import statistics
import time

import torch
import torch.distributed as dist

from launcher.recipe.cluster_schema import SlowRankSpec
from launcher.train.distributed import Dist


class SlowRanks:
    def __init__(self, spec: SlowRankSpec, d: Dist):
        self.spec, self.d = spec, d
        self.hosts = [None] * d.world_size
        dist.all_gather_object(self.hosts, socket.gethostname())
        self._streak = [0] * d.world_size

    def check(self, seconds: list[float]) -> list[dict]:
        """`seconds`: every rank's forward time per step this window. The ranks slow for `windows` windows in
        a row, with host and times."""
        median = statistics.median(seconds)
        slow = []
        for rank, value in enumerate(seconds):
            self._streak[rank] = self._streak[rank] + 1 if value > self.spec.factor * median > 0 else 0
            if self._streak[rank] >= self.spec.windows:
                slow.append({"rank": rank, "host": self.hosts[rank], "forward_seconds": round(value, 4),
                             "median_seconds": round(median, 4)})
        return slow


class ForwardTimer:
    """This rank's time in forwards: CUDA events on a GPU (host time there is only the kernel launches; the
    events are read at log steps, long finished), wall time on CPU."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._seconds = 0.0

    @contextlib.contextmanager
    def timing(self):
        if self._cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((start, end))
        else:
            began = time.monotonic()
            yield
            self._seconds += time.monotonic() - began

    def seconds(self) -> float:
        """Seconds timed since the last call."""
        if self._events:
            self._events[-1][1].synchronize()
        total = self._seconds + sum(start.elapsed_time(end) for start, end in self._events) / 1000
        self._events, self._seconds = [], 0.0
        return total
