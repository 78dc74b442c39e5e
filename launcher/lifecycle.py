"""Start and resume runs: recipe -> checks -> prepared data -> run dir -> plan -> execute -> summary."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from launcher.checkpoints import complete_checkpoints
from launcher.plan import LaunchPlan, make_plan
from launcher.preflight import preflight
from launcher.errors import UserError
from launcher.recipe import Recipe, load_recipe
from launcher.recipe.changes import recipe_changes, unsafe_changes
from launcher.rundir import RunDir, write_text_atomic


def prepare_data(recipe: Recipe) -> None:
    """Tokenizer + tokenized, packed data into the cache (what `llaunch prepare` does on a login node)."""
    from launcher.train.prepare import prepare  # heavy imports only on the commands that need them

    prepared = prepare(recipe)
    if prepared.cached:
        print(f"prepared data found in cache: {prepared.train.parent}")


def start_run(recipe_path: str, overrides: list[str]) -> tuple[RunDir, int]:
    recipe = load_recipe(recipe_path, overrides)
    preflight(recipe)
    prepare_data(recipe)  # bad data fails here, before a run dir exists or a process starts
    run = RunDir.create(recipe)
    return run, _launch(run, recipe)


def resume_run(run_dir: str, overrides: list[str], force: bool = False) -> tuple[RunDir, int]:
    run = RunDir.open(run_dir)
    before = run.load_recipe()
    recipe = run.load_recipe(overrides)
    problems = unsafe_changes(before, recipe)
    if problems and not force:
        raise UserError(f"{run.recipe_file}: resuming would change the training itself ({'; '.join(problems)});"
                        " only resources, logging, eval/checkpoint frequency and a larger max_steps are safe;"
                        " add --force to resume anyway")
    preflight(recipe)
    for key, was, now in recipe_changes(before, recipe):
        print(f"recipe change: {key}: {was!r} -> {now!r}")
    if overrides:
        run.write_recipe(recipe)
    return run, _launch(run, recipe)


def _launch(run: RunDir, recipe: Recipe) -> int:
    from launcher.backends.local import execute

    plan = make_plan(recipe, str(run.path))
    write_plan(run, plan)
    run.stop_file.unlink(missing_ok=True)
    print(f"run dir: {run.path}")
    print(f"$ {plan.commands[0].shell()}", flush=True)
    started = time.time()
    code = execute(plan)
    result = run.read_result() or {}
    if result.get("status") == "failed":
        code = result["exit_code"]
    print(summary(run, time.time() - started, code))
    return code


def write_plan(run: RunDir, plan: LaunchPlan) -> None:
    write_text_atomic(run.plan_file, plan.to_json())
    write_text_atomic(run.launch_script, plan.script())
    run.launch_script.chmod(0o755)


def read_metrics(run: RunDir) -> list[dict]:
    if not run.metrics.exists():
        return []
    return [json.loads(line) for line in run.metrics.read_text().splitlines() if line.strip()]


def summary(run: RunDir, seconds: float, code: int) -> str:
    result = run.read_result() or {}
    recipe = run.load_recipe()
    evals = [m for m in read_metrics(run) if m["kind"] == "eval"]
    checkpoints = complete_checkpoints(run.checkpoints)
    status = result.get("status", "failed")
    rel = _relative(run.path)
    lines = [f"\nrun {status} at step {result.get('step', '?')}/{recipe.train.max_steps} "
             f"in {int(seconds // 60)}m{int(seconds % 60):02d}s (exit code {code})"]
    if evals:
        first, last = evals[0], evals[-1]
        lines.append(f"  eval loss    {first['loss']:.4f} (step {first['step']}) -> {last['loss']:.4f} "
                     f"(step {last['step']}, perplexity {math.exp(min(last['loss'], 50)):.2f})")
    lines.append(f"  run dir      {rel}")
    if checkpoints:
        lines.append(f"  checkpoints  {_relative(checkpoints[-1][1])} (newest complete of {len(checkpoints)})")
    if "export" in result:
        lines.append(f"  export       {_relative(Path(result['export']))} (transformers from_pretrained)")
    lines.append(f"  metrics      {_relative(run.metrics)}")
    if recipe.logging.tensorboard:
        lines.append(f"  tensorboard  tensorboard --logdir {_relative(run.tensorboard)}")
    lines.append(f"  logs         {_relative(run.logs)}")
    if status != "completed":
        lines.append(f"  continue with: llaunch resume {rel}")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
