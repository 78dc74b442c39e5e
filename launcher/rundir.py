"""The run directory: the one place a run's state lives. Every command takes a recipe or a run dir."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from launcher.errors import UserError
from launcher.recipe.loading import load_recipe
from launcher.recipe.schema import Recipe


@dataclass(frozen=True)
class RunDir:
    path: Path

    recipe_file = property(lambda self: self.path / "recipe.yaml")
    plan_file = property(lambda self: self.path / "plan.json")
    launch_script = property(lambda self: self.path / "launch.sh")
    logs = property(lambda self: self.path / "logs")
    tensorboard = property(lambda self: self.path / "tensorboard")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    export = property(lambda self: self.path / "export")
    tokenizer = property(lambda self: self.path / "tokenizer")
    result_file = property(lambda self: self.path / "result.json")
    # Created by a batch script on a preemption signal (or by hand): every rank checkpoints at the
    # next step boundary and exits cleanly. Launchers remove it before they start the workers.
    stop_file = property(lambda self: self.path / "STOP")

    @classmethod
    def create(cls, recipe: Recipe) -> RunDir:
        root = Path(recipe.output.dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            path = root / f"{recipe.name}-{stamp}{suffix}"
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        else:
            raise UserError(f"{root}: could not create a new run directory")
        run = cls(path.resolve())
        run.logs.mkdir()
        run.write_recipe(recipe)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(Path(path).resolve())
        if not run.recipe_file.is_file():
            raise UserError(f"{path}: not a run directory (no recipe.yaml); runs live under output.dir, e.g. runs/")
        return run

    def write_recipe(self, recipe: Recipe) -> None:
        text = yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True), sort_keys=False)
        _atomic_write(self.recipe_file, "# Resolved recipe of this run (written by llaunch)\n" + text)

    def load_recipe(self, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
        return load_recipe(self.recipe_file, overrides)

    def read_result(self) -> dict[str, Any] | None:
        if not self.result_file.exists():
            return None
        return json.loads(self.result_file.read_text())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    _atomic_write(path, text)
