"""The plan for one plain worker process on this machine, and the environment every worker gets."""

from __future__ import annotations

from launcher.plan.launch_plan import LaunchPlan, NodeCommand, launch_script
from launcher.recipe.schema import Recipe

WORKER = ("-m", "launcher.train")


def worker_env(recipe: Recipe, cores: int) -> dict[str, str]:
    """OMP threads per worker (cores split between the node's workers) and offline hub settings."""
    threads = recipe.resources.threads_per_proc or max(1, cores // recipe.resources.procs_per_node)
    return {"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def plan_local(recipe: Recipe, run_dir: str, python: str, cores: int) -> LaunchPlan:
    command = NodeCommand("localhost", (python, *WORKER, run_dir))
    env = worker_env(recipe, cores)
    return LaunchPlan("local", run_dir, 1, 1, (command,), env, {"launch.sh": launch_script(env, command)})
