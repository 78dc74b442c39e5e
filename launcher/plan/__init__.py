"""Plan layer: Recipe + where to run -> LaunchPlan (pure data; rendering is pure). Imports no torch."""

from __future__ import annotations

import os
import sys

from launcher.plan.deepspeed import plan_deepspeed
from launcher.plan.launch_plan import LaunchPlan, NodeCommand
from launcher.plan.local import plan_local
from launcher.plan.profiles import resolve_slurm
from launcher.plan.slurm import plan_slurm
from launcher.plan.torchrun import plan_torchrun
from launcher.recipe.schema import Recipe

__all__ = ["LaunchPlan", "NodeCommand", "make_plan"]


def make_plan(recipe: Recipe, run_dir: str, python: str | None = None, cores: int | None = None) -> LaunchPlan:
    """The plan for recipe.resources.launcher. `python` and `cores` default to this machine's."""
    python = python or sys.executable
    cores = cores or os.cpu_count() or 1
    launcher = recipe.resources.launcher
    if launcher == "torchrun" and _one_plain_process(recipe):
        launcher = "local"
    if launcher == "slurm":
        return plan_slurm(recipe, run_dir, python, resolve_slurm(recipe.slurm))
    planners = {"local": plan_local, "torchrun": plan_torchrun, "deepspeed": plan_deepspeed}
    return planners[launcher](recipe, run_dir, python, cores)


def _one_plain_process(recipe: Recipe) -> bool:
    """One worker that torchrun would only supervise: started as a plain process instead (the agent costs
    1-2 s of start-up and nothing else). torchrun stays when the recipe asks for its restarts or elasticity."""
    r = recipe.resources
    return r.nodes == 1 and r.procs_per_node == 1 and not r.max_restarts and r.min_nodes is None
