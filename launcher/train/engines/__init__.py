"""Engines behind one interface; the recipe's parallel.strategy picks one."""

from __future__ import annotations

from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine
from launcher.train.methods import Method


def build_engine(recipe: Recipe, model, method: Method, dist: Dist) -> Engine:
    """`method`: what prepared `model`; it says what the optimizer holds and what a checkpoint keeps."""
    strategy = recipe.parallel.strategy
    if strategy == "ddp":
        from launcher.train.engines.ddp import DDPEngine as engine_class
    elif strategy == "fsdp2":
        from launcher.train.engines.fsdp2 import FSDP2Engine as engine_class
    else:
        from launcher.train.engines.deepspeed import DeepSpeedEngine as engine_class
    return engine_class(model, method, recipe, dist)
