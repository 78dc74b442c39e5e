"""Plans for one machine: a plain worker process, or torchrun with N worker processes."""

from __future__ import annotations

from launcher.plan.launch_plan import LaunchPlan, NodeCommand
from launcher.recipe.schema import Recipe

WORKER = ("-m", "launcher.train")


def worker_env(recipe: Recipe, cores: int) -> dict[str, str]:
    threads = recipe.resources.threads_per_proc or max(1, cores // recipe.resources.procs_per_node)
    return {"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def plan_local(recipe: Recipe, run_dir: str, python: str, cores: int) -> LaunchPlan:
    argv = (python, *WORKER, run_dir)
    return LaunchPlan("local", run_dir, 1, 1, (NodeCommand("localhost", argv),), worker_env(recipe, cores))


def plan_torchrun(recipe: Recipe, run_dir: str, python: str, cores: int) -> LaunchPlan:
    procs = recipe.resources.procs_per_node
    argv = (
        python, "-m", "torch.distributed.run",
        "--standalone", "--nnodes", "1", "--nproc-per-node", str(procs),
        *WORKER, run_dir,
    )
    return LaunchPlan("torchrun", run_dir, 1, procs, (NodeCommand("localhost", argv),), worker_env(recipe, cores))
