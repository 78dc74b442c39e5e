"""Opt-in (logging.sample_ids): the block indices each rank trained on, per step, for audits and tests."""

from __future__ import annotations

import json
import time

import numpy as np

from launcher.rundir import RunDir
from launcher.train.distributed import Dist, broadcast_text


class SampleLog:
    """Records carry the attempt (rank 0's start time): after a resume, a step's records from the newest
    attempt are the ones that counted."""

    def __init__(self, run: RunDir, d: Dist):
        self._attempt = float(broadcast_text(repr(time.time()) if d.is_main else None, d.device))
        self._file = open(run.logs / f"samples-rank{d.rank}.jsonl", "a", encoding="utf-8")

    def write(self, step: int, indices: np.ndarray) -> None:
        self._file.write(json.dumps({"attempt": self._attempt, "step": step, "ids": indices.tolist()}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
