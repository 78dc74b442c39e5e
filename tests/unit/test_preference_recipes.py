"""dpo and reward recipes: the dpo section is resolved into the run's recipe, and the combinations that
cannot give a reference (or mean nothing) are one-line errors before anything starts (no torch)."""

from __future__ import annotations


import pytest

from launcher.errors import UserError
from launcher.recipe import load_recipe
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

DPO = ROOT / "recipes" / "dpo.yaml"


def test_dpo_defaults_are_resolved_and_other_objectives_have_none():
    recipe = load_recipe(DPO, ["dpo=null"])
    assert (recipe.dpo.loss, recipe.dpo.beta, recipe.dpo.label_smoothing, recipe.dpo.reference) == (
        "sigmoid", 0.1, 0.0, "auto")
    assert load_recipe(ROOT / "recipes" / "reward.yaml").dpo is None


@pytest.mark.parametrize("overrides, message", [
    (["method.type=full", "method.lora=null", "dpo.reference=adapter"],
     r"dpo.reference=adapter needs an adapter to disable .*method.type=full .* use dpo.reference=precomputed"),
    (["dpo.loss=ipo", "dpo.label_smoothing=0.1"], r"dpo.label_smoothing is for dpo.loss=sigmoid"),
    (["objective=sft", "eval.metric=loss"], r"dpo: settings of objective dpo, but objective is sft"),
    (["dpo.los=ipo"], r"dpo.los: unknown key; did you mean"),
    (["dpo.loss=kto"], r"dpo.loss"),
    (["data.packing=true"], r"data.packing is for objective sft"),
    (["eval.metric=accuracy"], r"not a metric of objective dpo; valid: loss, reward_accuracy"),
])
def test_bad_dpo_recipes_are_one_line_errors(overrides, message):
    with pytest.raises(UserError, match=message) as error:
        load_recipe(DPO, overrides)
    assert "\n" not in str(error.value)
