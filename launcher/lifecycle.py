"""Start and resume runs: recipe -> checks -> prepared data -> run dir -> plan -> execute -> summary."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from launcher import prepared_index
from launcher.checkpoints import best_checkpoint, complete_checkpoints
from launcher.plan import LaunchPlan, make_plan
from launcher.preflight import preflight
from launcher.errors import UserError
from launcher.recipe import Recipe, load_recipe
from launcher.recipe.changes import recipe_changes, unsafe_changes
from launcher.rundir import RunDir, write_text_atomic


def prepare_data(recipe: Recipe) -> None:
    """Tokenizer + tokenized, packed data into the cache (what `llaunch prepare` does on a login node)."""
    found = prepared_index.lookup(recipe)  # prepared before: no torch/transformers imports here
    if found is None:
        from launcher.train.prepare import prepare  # heavy imports only when there is work to do

        prepared = prepare(recipe)
        prepared_index.record(recipe, prepared.dir)
        if not prepared.cached:
            return
        found = prepared.dir
    print(f"prepared data found in cache: {found}")


def start_run(recipe_path: str, overrides: list[str]) -> tuple[RunDir, int]:
    recipe = load_recipe(recipe_path, overrides)
    if recipe.resources.launcher == "slurm":
        raise UserError("resources.launcher=slurm: submit it with `llaunch submit RECIPE` "
                        "(llaunch run starts local, torchrun and deepspeed launches on this machine)")
    preflight(recipe)
    check_plan(recipe)
    prepare_data(recipe)  # bad data fails here, before a run dir exists or a process starts
    run = RunDir.create(recipe)
    return run, _launch(run, recipe)


def submit_run(recipe_path: str, overrides: list[str], prepare: bool = True) -> tuple[RunDir, str]:
    """Check, prepare the data (here, on the login node), create the run dir, sbatch its job script."""
    recipe = load_recipe(recipe_path, [*overrides, "resources.launcher=slurm"])
    preflight(recipe)
    check_plan(recipe)
    if not shutil.which("sbatch"):
        raise UserError("sbatch not found: llaunch submit runs on a SLURM login node "
                        "(llaunch plan --on slurm shows the job script)")
    if prepare:
        prepare_data(recipe)
    run = RunDir.create(recipe)
    try:
        return run, _submit(run, recipe)
    except UserError:
        shutil.rmtree(run.path)  # nothing was queued: leave nothing behind
        raise


def check_plan(recipe: Recipe) -> None:
    """Plan once before anything is prepared or created, so a launch setting that cannot work fails first."""
    make_plan(recipe, str(Path(recipe.output.dir).resolve() / f"{recipe.name}-check"))


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
    if recipe.resources.launcher == "slurm":
        _refuse_live_job(run)
    for key, was, now in recipe_changes(before, recipe):
        print(f"recipe change: {key}: {was!r} -> {now!r}")
    if overrides:
        run.write_recipe(recipe)
    if recipe.resources.launcher == "slurm":
        _submit(run, recipe)
        return run, 0
    return run, _launch(run, recipe)


def _launch(run: RunDir, recipe: Recipe) -> int:
    from launcher.backends.local import execute

    plan = make_plan(recipe, str(run.path))
    write_plan(run, plan)
    run.stop_file.unlink(missing_ok=True)
    run.result_file.unlink(missing_ok=True)  # a result from an earlier start must not stand for this one
    print(f"run dir: {run.path}")
    if plan.nodes > 1 and plan.launcher == "torchrun":
        print(f"this is one of {plan.nodes} nodes: start the same on each other node with "
              f"`llaunch resume {run.path}` (or bash {run.launch_script})")
    print(f"$ {plan.commands[0].shell()}", flush=True)
    started = time.time()
    code = execute(plan)
    result = run.read_result() or {}
    if result.get("status") == "failed":
        code = result["exit_code"]
    print(summary(run, time.time() - started, code))
    return code


def _refuse_live_job(run: RunDir) -> None:
    from launcher.backends import slurm

    jobs = slurm.job_ids(run)
    job = slurm.query(jobs[-1]) if jobs else None
    if job and not job.finished and job.state != "UNKNOWN":
        raise UserError(f"{run.path}: job {jobs[-1]} is still {job.state}; it resumes by itself when requeued "
                        f"(llaunch cancel {run.path} stops it)")


def _submit(run: RunDir, recipe: Recipe) -> str:
    from launcher.backends import slurm

    plan = make_plan(recipe, str(run.path))
    write_plan(run, plan)
    job = slurm.submit(plan)
    slurm.record_job(run, job)
    print(f"run dir: {_relative(run.path)}")
    print(f"submitted job {job} ({plan.nodes} node(s) x {plan.procs_per_node} process(es)); "
          f"follow it with: llaunch status {_relative(run.path)}; llaunch logs -f {_relative(run.path)}")
    return job


def write_plan(run: RunDir, plan: LaunchPlan) -> None:
    """plan.json and the plan's files (launch.sh or job.sbatch, hostfile) into the run dir."""
    write_text_atomic(run.plan_file, plan.to_json())
    for name, text in plan.files.items():
        write_text_atomic(run.path / name, text)
        if name == plan.script_name:
            (run.path / name).chmod(0o755)


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
        ppl = f", perplexity {math.exp(min(last['loss'], 50)):.2f}" if "perplexity" in last else ""
        lines.append(f"  eval loss    {first['loss']:.4f} (step {first['step']}) -> {last['loss']:.4f} "
                     f"(step {last['step']}{ppl})")
        metric = recipe.eval.metric
        if metric and metric not in ("loss", "perplexity") and metric in last:
            best = f"; best {result['best_value']:.4f} at step {result['best_step']}" if "best_step" in result else ""
            lines.append(f"  eval {metric:<8}{first[metric]:.4f} (step {first['step']}) -> {last[metric]:.4f} "
                         f"(step {last['step']}{best})")
    if result.get("early_stopped"):
        lines.append(f"  stopped early: {recipe.early_stopping.metric} stopped improving (early_stopping)")
    lines.append(f"  run dir      {rel}")
    if checkpoints:
        lines.append(f"  checkpoints  {_relative(checkpoints[-1][1])} (newest complete of {len(checkpoints)})")
        best_found = best_checkpoint(run.checkpoints)
        if best_found:
            lines.append(f"  best         {_relative(best_found[1])} (by eval.metric {recipe.eval.metric}; "
                         f"llaunch export {rel} --best)")
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
