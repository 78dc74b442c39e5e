"""The objectives, one module each, named as the recipe names them (`objective`; the names and their
metrics are listed once, in launcher/recipe/objectives.py); `objective_class(name)` picks one."""

from __future__ import annotations

from importlib import import_module

from launcher.train.objectives.base import EvalOutput, Objective

def objective_class(name: str) -> type[Objective]:
    """The Objective subclass of module `name` whose `name` it is."""
    module = import_module(f"launcher.train.objectives.{name}")
    return next(value for value in vars(module).values()
                if isinstance(value, type) and issubclass(value, Objective) and value.name == name)


def build_objective(recipe, tokenizer, labels: list[str] | None = None) -> Objective:
    return objective_class(recipe.objective)(recipe, tokenizer, labels)


__all__ = ["EvalOutput", "Objective", "build_objective", "objective_class"]
