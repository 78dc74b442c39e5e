"""A request to stop: SIGTERM/SIGINT/SIGUSR2 or the run's STOP file; all ranks then stop at the same step."""

from __future__ import annotations

import signal
from pathlib import Path


class StopRequest:
    """Only rank 0 looks at the STOP file; any rank may be signalled. The ranks agree through the one
    collective every step already has (the step's count of target tokens, trainer.py), so stopping costs
    no collective of its own."""

    def __init__(self, stop_file: Path, is_main: bool):
        self.signalled = False
        self._file = stop_file if is_main else None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signalled = True

    @property
    def requested(self) -> bool:
        return self.signalled or (self._file is not None and self._file.exists())
