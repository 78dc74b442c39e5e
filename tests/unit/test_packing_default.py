"""sft packs by default where the model's attention keeps packed examples apart at full speed, pads elsewhere."""

from __future__ import annotations

import json

import pytest

from launcher.recipe import load_recipe
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

SFT = ROOT / "recipes" / "sft_lora.yaml"


def _packing(tmp_path, config: dict, *overrides: str) -> bool:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return load_recipe(SFT, ["~data.packing", f"model.path={tmp_path}", *overrides]).data.packing


def test_llama_packs_by_default(tmp_path):
    assert _packing(tmp_path, {"model_type": "llama"}) is True


@pytest.mark.parametrize("config", [{"model_type": "gpt2"}, {"model_type": "mistral", "sliding_window": 4096}])
def test_other_attention_pads(tmp_path, config):
    assert _packing(tmp_path, config) is False


def test_the_recipe_decides_when_it_says(tmp_path):
    assert _packing(tmp_path, {"model_type": "llama"}, "data.packing=false") is False
    assert _packing(tmp_path, {"model_type": "gpt2"}, "data.packing=true") is True
