"""Engines behind one interface; the recipe's parallel.strategy picks one."""

from __future__ import annotations

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine


def build_engine(recipe: Recipe, model, dist: Dist) -> Engine:
    from launcher.train.engines.ddp import DDPEngine

    engines = {"ddp": DDPEngine}
    return engines[recipe.parallel.strategy](model, recipe, dist)
