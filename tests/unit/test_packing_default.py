"""sft packs by default where the model's attention keeps packed examples apart at full speed, pads elsewhere."""

from __future__ import annotations

import json

import pytest

from launcher.recipe import load_recipe
from tests.conftest import ROOT, llaunch

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


def test_plan_says_when_sft_falls_back_to_padding_and_why(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    shown = llaunch("plan", str(SFT), "~data.packing", f"model.path={tmp_path}")
    assert shown.returncode == 0, shown.stderr
    fallback = [line for line in shown.stdout.splitlines() if line.startswith("packing")]
    assert fallback == ["packing   off: sft falls back to padding here "
                        "(model type gpt2 is not one whose attention llaunch packs)"]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    packed = llaunch("plan", str(SFT), "~data.packing", f"model.path={tmp_path}").stdout
    assert "falls back to padding" not in packed and "attention packed rows" in packed
