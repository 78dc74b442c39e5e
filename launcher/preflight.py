"""Cheap checks on disk before anything is created or started (no torch): files exist, dirs are models."""

from __future__ import annotations

import json
from pathlib import Path

from launcher.data.sources import expand, is_saved_dataset
from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.train.trackers import check_installed


def preflight(recipe: Recipe) -> None:
    for key, names in (("data.train", recipe.data.train), ("data.eval", recipe.data.eval)):
        for name in expand(names, key):
            _check_file(key, name)
    if recipe.tokenizer.train and recipe.tokenizer.train.files:
        for name in recipe.tokenizer.train.files:
            _check_file("tokenizer.train.files", name)
    if recipe.model.path:
        check_model_dir(recipe.model.path)
    if recipe.tokenizer.path and not Path(recipe.tokenizer.path).is_dir():
        raise UserError(f"tokenizer.path {recipe.tokenizer.path}: not a directory")
    check_installed(recipe)  # logging.wandb / logging.mlflow: their packages (found, not imported)


def _check_file(key: str, name: str) -> None:
    path = Path(name)
    if not path.exists():
        raise UserError(f"{key}: file {name} not found")
    if is_saved_dataset(path):
        return
    if not path.is_file():
        raise UserError(f"{key}: {name} is a directory, expected a .txt or .jsonl file")
    if path.stat().st_size == 0:
        raise UserError(f"{key}: {name} is empty (0 bytes); a split needs at least one example")


def check_model_dir(path: str) -> None:
    """A model directory has a config.json naming its model_type."""
    config = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise UserError(f"model.path {path}: not a directory")
    if not config.is_file():
        raise UserError(f"model.path {path}: not a model directory (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UserError(f"model.path {config}: not valid JSON") from None
    if not model_type:
        raise UserError(f"model.path {config}: has no model_type")
