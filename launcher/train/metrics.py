"""metrics.jsonl (one JSON object per logged step or eval) and TensorBoard scalars; rank 0 only."""

from __future__ import annotations

from pathlib import Path

from launcher.rundir import metrics_line


class Metrics:
    def __init__(self, jsonl: Path, tensorboard_dir: Path | None, enabled: bool):
        self._enabled = enabled
        self._file = open(jsonl, "a", encoding="utf-8") if enabled else None
        self._writer = None
        if enabled and tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(tensorboard_dir))
        self._trackers = None
        if enabled:  # W&B, MLflow: only when the run's recipe sets logging.wandb / logging.mlflow
            from launcher.train.trackers import open_trackers

            self._trackers = open_trackers(jsonl.parent)

    def log(self, kind: str, step: int, **values: float) -> None:
        if not self._enabled:
            return
        self._file.write(metrics_line(kind, step, values))
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)
        if self._trackers is not None:
            self._trackers.log(kind, step, values)

    def close(self, ending: str = "completed") -> None:
        """`ending`: completed, interrupted (stopped or preempted: resumable) or failed; the trackers record it."""
        if self._file:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
        if self._trackers is not None:
            self._trackers.close(ending)
