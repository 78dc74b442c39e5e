"""Plan layer: Recipe + where to run -> LaunchPlan (pure data; rendering is pure). Imports no torch."""

from __future__ import annotations

import os
import sys

from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan, NodeCommand
from launcher.plan.local import plan_local, plan_torchrun
from launcher.recipe.schema import Recipe

__all__ = ["LaunchPlan", "NodeCommand", "make_plan"]


def make_plan(recipe: Recipe, run_dir: str, python: str | None = None, cores: int | None = None) -> LaunchPlan:
    python = python or sys.executable
    cores = cores or os.cpu_count() or 1
    if recipe.resources.nodes > 1:
        raise UserError(
            f"resources.nodes={recipe.resources.nodes}: multi-node launches are not available yet; use nodes: 1"
        )
    if recipe.resources.launcher == "local":
        return plan_local(recipe, run_dir, python, cores)
    return plan_torchrun(recipe, run_dir, python, cores)
