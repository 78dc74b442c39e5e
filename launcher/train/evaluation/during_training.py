"""Evaluation inside the train loop: run, log (metrics.jsonl + TensorBoard), track the best, decide stopping."""

from __future__ import annotations

from typing import Any

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.dtypes import compute_dtype
from launcher.train.evaluation.best import BestTracker, Verdict
from launcher.train.evaluation.evaluator import evaluate, format_metrics
from launcher.train.metrics import Metrics
from launcher.train.objectives import Objective
from launcher.train.progress import TrainProgress


class TrainingEvaluator:
    def __init__(self, engine, objective: Objective, columns: dict[str, Any] | None, recipe: Recipe, d: Dist,
                 metrics: Metrics, progress: TrainProgress, tracker: BestTracker):
        self.engine, self.objective, self.columns, self.recipe, self.d = engine, objective, columns, recipe, d
        self.metrics, self.progress, self.tracker = metrics, progress, tracker
        self.last_step: int | None = None
        if engine.gathers_weights_in_forward and d.world_size > 1:
            objective.generate_kwargs = {"synced_gpus": True}

    def __call__(self, step: int) -> Verdict:
        if self.columns is None or self.last_step == step:
            return Verdict(False, False)
        self.last_step = step
        values = evaluate(
            self.objective, self.columns, self.engine.model, self.engine.unwrapped(),
            micro=self.recipe.train.micro_batch_size, max_batches=self.recipe.eval.max_batches,
            rank=self.d.rank, world=self.d.world_size, device=self.d.device,
            autocast=compute_dtype(self.recipe.parallel.mixed_precision),
        )
        verdict = self.tracker.update(step, values) if step > 0 else Verdict(False, False)  # step 0 is the baseline
        self.metrics.log("eval", step, **values)
        mark = "  (best so far)" if verdict.new_best else ""
        self.progress.message(f"eval step {step}: {format_metrics(values)}{mark}")
        return verdict
