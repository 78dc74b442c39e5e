"""Start and resume runs: recipe -> checks -> prepared data -> run dir -> dry run -> launch -> summary."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from launcher.data import cache_index
from launcher.backends.base import Backend, backend_for
from launcher.errors import UserError
from launcher.preflight import preflight
from launcher.recipe import Recipe, load_recipe
from launcher.recipe.changes import recipe_changes, unsafe_changes
from launcher.report import summary
from launcher.rundir import RunDir


def prepare_data(recipe: Recipe, here: bool = True) -> None:
    """Tokenizer + tokenized, packed data into the cache (what `llaunch prepare` does on a login node).
    `here=False`: only say whether it is prepared; the workers prepare it, in the processes that import
    torch and transformers anyway (one heavy import per process)."""
    found = cache_index.lookup(recipe)  # prepared before: no torch/transformers imports here
    if found is None and not here:
        return
    if found is None:
        from launcher.data.prepare import prepare  # heavy imports only when there is work to do

        prepared = prepare(recipe)
        cache_index.record(recipe, prepared.dir)
        if not prepared.cached:
            return
        found = prepared.dir
    print(f"prepared data found in cache: {found}")


def start_run(recipe_path: str, overrides: list[str]) -> tuple[RunDir, int]:
    recipe = load_recipe(recipe_path, overrides)
    if backend_for(recipe).queued:
        raise UserError(f"resources.launcher={recipe.resources.launcher}: submit it with `llaunch submit RECIPE` "
                        "(llaunch run starts local, torchrun and deepspeed launches on this machine)")
    return _start(recipe, prepare_here=False)  # the workers prepare: torch is imported there anyway


def submit_run(recipe_path: str, overrides: list[str], prepare: bool = True) -> tuple[RunDir, int]:
    """Check, create the run dir, sbatch its job script. Unprepared data is prepared by an array job the
    training job waits for (slurm.prepare_tasks), or with slurm.prepare_tasks=0 here, on the login node;
    `prepare=False`: by neither (the workers prepare it)."""
    from launcher.backends.slurm import prepare_tasks

    recipe = load_recipe(recipe_path, [*overrides, "resources.launcher=slurm", *([] if prepare else
                                                                                ["slurm.prepare_tasks=0"])])
    return _start(recipe, prepare_here=prepare and not prepare_tasks(recipe))


def _start(recipe: Recipe, prepare_here: bool) -> tuple[RunDir, int]:
    backend = backend_for(recipe)
    preflight(recipe)
    # a dry run before anything is prepared or created, so a launch setting that cannot work fails first
    backend.dryrun(recipe, str(Path(recipe.output.dir).resolve() / f"{recipe.name}-check"))
    backend.check_here()
    prepare_data(recipe, here=prepare_here)
    run = RunDir.create(recipe)
    return run, _launch(run, recipe, backend, fresh=True)


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
    state = backend_for(run).status(run)
    if state.queued:
        raise UserError(f"{run.path}: job {state.job} is still {state.state}; it resumes by itself when requeued "
                        f"(llaunch cancel {run.path} stops it)")
    for key, was, now in recipe_changes(before, recipe):
        print(f"recipe change: {key}: {was!r} -> {now!r}")
    if overrides:
        run.write_recipe(recipe)
    return run, _launch(run, recipe, backend_for(recipe))


def _launch(run: RunDir, recipe: Recipe, backend: Backend, fresh: bool = False) -> int:
    """Dry run into the run dir, launch; after a run on this machine, its summary and exit code.
    A `fresh` run dir that nothing was started in is removed again."""
    started = time.time()
    try:
        plan = backend.dryrun(recipe, str(run.path))
        run.write_plan(plan)
        code = backend.launch(run, plan)
    except UserError:
        if fresh:
            shutil.rmtree(run.path)
        raise
    if code is None:
        return 0  # queued: llaunch status / logs follow it
    result = run.read_result()
    if fresh and result is not None and result.exit_code == UserError.exit_code and not run.read_metrics() \
            and not any(run.checkpoints.glob("step-*")):
        shutil.rmtree(run.path)  # a user's mistake found before any step (bad data): the worker said it in one line
        return result.exit_status
    if result is not None and result.status == "failed":
        code = result.exit_status
    print(summary(run, time.time() - started, code))
    return code
