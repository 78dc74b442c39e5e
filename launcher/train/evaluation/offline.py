"""`llaunch eval RUN_DIR|MODEL_DIR`: score a run's checkpoint or an exported model on a data file.

The same objective code as training reads and tokenizes the file (so bad rows fail the same way)
and the same evaluator scores it, in this one process.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.rundir import OBJECTIVE_FILE, ObjectiveFile, RunDir, read_objective



@dataclass
class Report:
    source: str
    files: list[str]
    examples: int
    metrics: dict[str, float]

    def table(self) -> str:
        width = max(len(name) for name in self.metrics)
        lines = [f"evaluated {self.source}", f"on {', '.join(self.files)} ({self.examples} examples)", "",
                 f"{'metric':<{width}}  value"]
        for name, value in self.metrics.items():
            lines.append(f"{name:<{width}}  {value:.4f}")
        return "\n".join(lines)


def evaluate_target(target: str, data: list[str], split: str | None, step: int | None, best: bool,
                    objective_name: str | None, micro: int, max_batches: int | None) -> Report:
    from launcher.train.evaluation.evaluator import evaluate
    from launcher.train.objectives import build_objective
    from launcher.data.prepare import read_split

    path = Path(target)
    if (path / "recipe.yaml").is_file():
        recipe, model, tokenizer, labels, source = _from_run(RunDir.open(path), step, best, data)
    elif (path / "config.json").is_file():
        if not data:
            raise UserError(f"{target}: a model directory has no data of its own; pass --data FILE")
        recipe, model, tokenizer, labels, source = _from_model_dir(path, objective_name, data)
    else:
        raise UserError(f"{target}: neither a run directory (recipe.yaml) nor a model directory (config.json)")
    if data:
        for name in data:
            if not Path(name).is_file():
                raise UserError(f"--data: file {name} not found")
        files = data
    else:
        files = recipe.data.train if split == "train" else recipe.data.eval
        if not files:
            raise UserError(f"{target}: the run's recipe has no data.eval files; pass --data FILE or --split train")
    objective = build_objective(recipe, tokenizer, labels)
    with tempfile.TemporaryDirectory(prefix="llaunch-eval-") as cache:
        rows = read_split(recipe, objective, files, Path(cache))
        columns = objective.encode(rows, "eval")
        model.eval()
        metrics = evaluate(objective, columns, model, model, micro=micro, max_batches=max_batches)
    return Report(source, files, len(rows), metrics)


def _from_run(run: RunDir, step: int | None, best: bool, data: list[str]):
    from launcher.train.export import load_checkpoint_model, pick_checkpoint

    recipe = run.load_recipe()
    step, checkpoint = pick_checkpoint(run, step, best)
    model, tokenizer = load_checkpoint_model(run, checkpoint)
    task = read_objective(run.path)
    labels = task.labels if task else None
    return recipe, model, tokenizer, labels, f"{checkpoint} (step {step})"


def _from_model_dir(path: Path, objective_name: str | None, data: list[str]):
    import transformers
    from transformers import AutoTokenizer

    from launcher.train.objectives import objective_class

    task = read_objective(path) or ObjectiveFile(objective=None)
    name = objective_name or task.objective
    if name is None:
        raise UserError(f"{path}: no {OBJECTIVE_FILE} saying which objective it was trained for; pass --objective")
    recipe = _recipe_for(path, name, task, data)
    tokenizer = AutoTokenizer.from_pretrained(path)
    auto = getattr(transformers, objective_class(name).auto_class)
    try:
        model = auto.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot load as {auto.__name__}: {str(exc).splitlines()[0]}") from None
    labels = task.labels
    if labels is None and name in ("seq_cls", "token_cls"):
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return recipe, model, tokenizer, labels, str(path)


def _recipe_for(path: Path, objective: str, task: ObjectiveFile, data: list[str]) -> Recipe:
    """A recipe holding what the objective code reads: the data settings the model was trained with."""
    import pydantic

    try:
        return Recipe.model_validate({
            "name": "eval", "model": {"path": str(path)}, "objective": objective,
            "data": {**(task.data or {}), "train": data}, "train": {"max_steps": 1},
            "eval": task.eval or {}, "resources": {"launcher": "local"},
        })
    except pydantic.ValidationError as exc:
        raise UserError(f"{path / OBJECTIVE_FILE}: {exc.errors()[0]['msg']}") from None

