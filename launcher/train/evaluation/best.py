"""Best checkpoint and early stopping: which eval was best by `eval.metric`, and whether to stop.

The state lives in the trainer state of every checkpoint, so a resumed run keeps counting where
it left off. The mode (max or min) follows from the metric: losses go down, scores go up.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.recipe.objectives import metric_mode
from launcher.recipe.schema import Recipe


@dataclass(frozen=True)
class Verdict:
    new_best: bool
    stop: bool
    reason: str = ""


def _better(value: float, than: float | None, mode: str, margin: float = 0.0) -> bool:
    if than is None:
        return True
    return value > than + margin if mode == "max" else value < than - margin


class BestTracker:
    def __init__(self, recipe: Recipe, state):
        self.metric = recipe.eval.metric
        self.stopping = recipe.early_stopping
        self.state = state  # checkpoint.TrainerState: best_step, best_value, stop_value, evals_without_improvement

    @property
    def enabled(self) -> bool:
        return self.metric is not None

    def update(self, step: int, metrics: dict[str, float]) -> Verdict:
        if not self.enabled:
            return Verdict(False, False)
        s = self.state
        new_best = False
        if _better(metrics[self.metric], s.best_value, metric_mode(self.metric)):
            s.best_step, s.best_value, new_best = step, metrics[self.metric], True
        if self.stopping is None:
            return Verdict(new_best, False)
        watched, mode = metrics[self.stopping.metric], metric_mode(self.stopping.metric)
        if _better(watched, s.stop_value, mode, self.stopping.min_delta):
            s.stop_value, s.evals_without_improvement = watched, 0
            return Verdict(new_best, False)
        s.evals_without_improvement += 1
        if s.evals_without_improvement >= self.stopping.patience:
            return Verdict(new_best, True, f"{self.stopping.metric} has not improved by more than "
                           f"{self.stopping.min_delta} for {s.evals_without_improvement} evals "
                           f"(best {s.stop_value:.4f})")
        return Verdict(new_best, False)
