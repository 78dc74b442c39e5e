"""Progress on rank 0: a live rich bar on a terminal, plain lines otherwise (SLURM logs, pipes)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, total: int, start: int, mode: str, enabled: bool):
        self.enabled = enabled
        self.total = total
        self._live = enabled and (mode == "bar" or (mode == "auto" and sys.stdout.isatty()))
        self._started = time.time()
        self._start_step = start
        self._bar = None
        if self._live:
            self._bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=Console(), transient=False,
            )
            self._task = self._bar.add_task("train", total=total, completed=start, stats="")
            self._bar.start()

    def update(self, step: int, loss: float, lr: float, tokens_per_s: float, mfu: float | None = None) -> None:
        if not self.enabled:
            return
        stats = f"loss {loss:.4f}  lr {lr:.2e}  {tokens_per_s:,.0f} tok/s"
        if mfu is not None:
            stats += f"  MFU {mfu:.1%}"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, stats=stats)
        else:
            print(f"step {step}/{self.total}  {stats}  eta {self._eta(step)}", flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _eta(self, step: int) -> str:
        done = step - self._start_step
        if done <= 0:
            return "?"
        seconds = int((time.time() - self._started) / done * (self.total - step))
        return f"{seconds // 60}m{seconds % 60:02d}s"
