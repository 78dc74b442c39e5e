"""The memory estimator: parameter counts from configs equal the real models', the table, bad input, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from launcher.errors import UserError
from launcher.estimate import estimate_recipe, parse_size, rows_for
from launcher.estimate.shapes import model_shape
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, ROOT, llaunch

pytestmark = pytest.mark.unit

LLAMA_8B = ROOT / "recipes" / "llama-3-8b.yaml"
LLAMA_70B = ROOT / "recipes" / "llama-3-70b.yaml"
TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
        "vocab_size": 500}
CONFIGS = {
    "llama tied": {"model_type": "llama", **TINY, "tie_word_embeddings": True},
    "llama gqa untied": {"model_type": "llama", **TINY, "num_key_value_heads": 2},
    "llama biases": {"model_type": "llama", **TINY, "attention_bias": True, "mlp_bias": True},
    "mistral": {"model_type": "mistral", **TINY, "num_key_value_heads": 1},
    "qwen2": {"model_type": "qwen2", **TINY, "num_key_value_heads": 2},
    "bert": {"model_type": "bert", **TINY, "max_position_embeddings": 128},
    "llama-3-8b": json.loads((ROOT / "recipes/models/llama-3-8b/config.json").read_text()),
    "llama-3-70b": json.loads((ROOT / "recipes/models/llama-3-70b/config.json").read_text()),
}


def _real_count(config: dict) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    settings = dict(config)
    kind = settings.pop("model_type")
    for key in ("architectures", "torch_dtype", "transformers_version"):
        settings.pop(key, None)
    auto = AutoModelForMaskedLM if kind == "bert" else AutoModelForCausalLM
    with torch.device("meta"):  # shapes only: even 70B builds in a moment
        model = auto.from_config(AutoConfig.for_model(kind, **settings))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_from_config_equals_the_real_model(name):
    assert model_shape(CONFIGS[name]).numel == _real_count(CONFIGS[name])


def test_llama_3_sizes():
    assert model_shape(CONFIGS["llama-3-8b"]).numel == 8_030_261_248
    assert model_shape(CONFIGS["llama-3-70b"]).numel == 70_553_706_496


def test_lora_trainable_count_equals_peft():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    recipe = load_recipe(QUICKSTART, ["method.type=lora", "method.lora.r=4",
                                      "method.lora.target_modules=[q_proj,v_proj,down_proj]"])
    settings = {k: v for k, v in recipe.model.config.items() if k != "type"}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", vocab_size=320, **settings))
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    assert estimate_recipe(recipe).trainable == peft.get_nb_trainable_parameters()[0]


def test_sharding_divides_by_the_world_size():
    recipe = load_recipe(LLAMA_8B)
    one, eight = estimate_recipe(recipe, world_size=1), estimate_recipe(recipe, world_size=8)
    assert one.params == pytest.approx(8 * eight.params) and one.optimizer == pytest.approx(8 * eight.optimizer)
    ddp = estimate_recipe(load_recipe(LLAMA_8B, ["parallel.strategy=ddp"]))
    assert ddp.params == 8_030_261_248 * 4 and ddp.optimizer == 2 * ddp.params  # fp32 weights, AdamW moments


def test_table_marks_the_recipe_and_what_fits_on_80gb():
    _, rows = rows_for(load_recipe(LLAMA_8B), world_size=8)
    usable = 0.9 * parse_size("80GiB")
    fits = {(r.strategy, r.offload, r.method): r.result.total <= usable for r in rows if r.result}
    assert [(r.strategy, r.method) for r in rows if r.is_recipe] == [("fsdp2", "full")]
    assert not fits[("ddp", "none", "full")] and fits[("fsdp2", "none", "full")] and fits[("ddp", "none", "qlora")]
    refused = {(r.strategy, r.offload, r.method): r.refused for r in rows if r.refused}
    assert "not offloaded" in refused[("zero3", "optimizer", "qlora")]
    _, rows = rows_for(load_recipe(LLAMA_70B), world_size=8)
    fits = {(r.strategy, r.offload, r.method): r.result.total <= usable for r in rows if r.result}
    assert not fits[("fsdp2", "none", "full")] and fits[("zero3", "optimizer", "full")] and fits[("ddp", "none", "qlora")]


@pytest.mark.parametrize(("text", "expected"), [("80GiB", 80 << 30), ("80GB", 80 * 10**9), ("24576MiB", 24 << 30),
                                                ("1.5 TiB", int(1.5 * (1 << 40))), ("1024", 1024)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_cli_prints_the_table_without_importing_torch():
    code = ("import sys; from launcher.cli import main; rc = main(['estimate', 'recipes/llama-3-70b.yaml', "
            "'--gpu-memory', '80GiB', '--nodes', '1', '--gpus-per-node', '8']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "70.6B parameters" in result.stdout and "1 node(s) x 8 = 8, 80.0 GiB each" in result.stdout
    assert "| **zero3** | none | lora |" in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["--gpu-memory", "lots"], "--gpu-memory 'lots': expected a size like 80GiB"),
    (["model.config.type=gpt9"], "estimate: model_type 'gpt9' is not known"),
])
def test_cli_bad_input_is_one_line(args, expected):
    result = llaunch("estimate", str(QUICKSTART), *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


def test_unknown_model_type_is_a_user_error():
    with pytest.raises(UserError, match="model_type 'gpt9' is not known"):
        model_shape({"model_type": "gpt9"})
