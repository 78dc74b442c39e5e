"""Every shipped recipe (CPU ones and the cluster ones that cannot run here) validates and plans."""

from __future__ import annotations

import pytest

from launcher.plan import make_plan
from launcher.recipe import load_recipe
from launcher.recipe.objectives import OBJECTIVE_NAMES
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.relative_to(ROOT / "recipes").parts)


def test_there_is_a_recipe_per_objective():
    objectives = {load_recipe(path).objective for path in RECIPES}
    assert objectives == set(OBJECTIVE_NAMES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_validates_and_plans(path, tmp_path):
    recipe = load_recipe(path)
    r = recipe.resources
    if r.launcher == "torchrun" and r.nodes > 1 and not r.rdzv_endpoint:
        recipe = load_recipe(path, ["resources.launcher=slurm"])  # what `llaunch plan --on slurm` shows
    plan = make_plan(recipe, str(tmp_path / f"{recipe.name}-stamp"))
    assert plan.commands or plan.files
    if recipe.resources.launcher == "slurm":
        script = plan.files["job.sbatch"]
        assert f"--nodes={recipe.resources.nodes}" in script or f"--nodes {recipe.resources.nodes}" in script
        assert "srun" in script


CPU_RECIPES = [p for p in RECIPES if load_recipe(p).resources.device == "cpu"]


@pytest.mark.parametrize("path", CPU_RECIPES, ids=lambda p: p.name)
def test_cpu_recipes_name_data_that_exists(path):
    recipe = load_recipe(path)
    for name in recipe.data.train + recipe.data.eval:
        assert (ROOT / name).is_file(), name
