"""Recipe layer: load, merge `extends:`, apply overrides, validate. Imports no torch."""

from launcher.recipe.loading import load_recipe
from launcher.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe"]
