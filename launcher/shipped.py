"""The recipes shipped in the checkout's recipes/ folder: list them, start a new recipe from one."""

from __future__ import annotations

from pathlib import Path

import yaml

from launcher.errors import UserError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _shipped() -> dict[str, Path]:
    return {str(path.relative_to(RECIPES).with_suffix("")): path for path in sorted(RECIPES.rglob("*.yaml"))
            if "data" not in path.relative_to(RECIPES).parts}


def list_recipes() -> list[tuple[str, str]]:
    rows = []
    for name, path in _shipped().items():
        try:
            description = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        except yaml.YAMLError:
            description = ""
        rows.append((name, str(description)))
    return rows


def copy_recipe(name: str, to: str | None) -> Path:
    """Write a new recipe that extends the shipped one (its data paths keep working wherever it lands)."""
    shipped = _shipped()
    if name not in shipped:
        raise UserError(f"no shipped recipe '{name}'; available: {', '.join(shipped)}")
    target = Path(to or f"{Path(name).name}.yaml")
    if target.exists():
        raise UserError(f"{target}: exists; choose another file with --to")
    target.write_text(
        f"# Starts from the shipped recipe; override any key below (see README: Recipe reference).\n"
        f"extends: {shipped[name]}\n"
        f"name: my-{Path(name).name}\n"
        f"# train:\n#   max_steps: 1000\n#   lr: 1.0e-4\n# resources:\n#   procs_per_node: 8\n"
    )
    return target
