"""Engine x method x precision rules, DeepSpeed config checks and target patterns: one clear line each."""

from __future__ import annotations

import json

import pytest

from launcher.errors import UserError
from launcher.recipe import load_recipe
from launcher.recipe.ds_config import fill_model_sized, resolve
from tests.conftest import QUICKSTART, llaunch

pytestmark = pytest.mark.unit

SUPPORTED = [
    [],
    ["parallel.strategy=fsdp2"],
    ["parallel.strategy=fsdp2", "parallel.offload=params", "parallel.mixed_precision=bf16"],
    ["parallel.strategy=zero1", "parallel.offload=optimizer"],
    ["parallel.strategy=zero2", "parallel.offload=optimizer"],
    ["parallel.strategy=zero3", "parallel.offload=params", "parallel.activation_checkpointing=true"],
    ["method.type=lora", "method.lora.target_modules=[q_proj,v_proj]", "method.lora.use_dora=true"],
    ["method.type=qlora", "parallel.strategy=zero2"],
    ["method.type=qlora", "parallel.strategy=fsdp2", "method.qlora.quant_storage=float32"],
    ["method.type=qlora", "method.qlora.bits=8", "parallel.strategy=zero1"],
    ["method.type=freeze", "method.freeze.train_top_blocks=1", "method.freeze.unfreeze_every=10"],
    ["method.type=freeze", "method.freeze.train_patterns=[norm]", "parallel.strategy=zero3"],
]


@pytest.mark.parametrize("overrides", SUPPORTED, ids=lambda o: " ".join(o) or "default")
def test_supported_combinations_validate(overrides):
    load_recipe(QUICKSTART, overrides)


REFUSED = {
    "offload without a sharding engine": (["parallel.offload=optimizer"], "needs a sharding engine"),
    "fsdp2 optimizer-only offload": (["parallel.strategy=fsdp2", "parallel.offload=optimizer"],
                                     "FSDP2 offloads parameters, gradients and the optimizer step together"),
    "param offload with zero2": (["parallel.strategy=zero2", "parallel.offload=params"],
                                 "only zero3 (or fsdp2) shards parameters"),
    "8-bit with zero3": (["method.type=qlora", "method.qlora.bits=8", "parallel.strategy=zero3"],
                         "8-bit (LLM.int8) weights cannot be sharded"),
    "8-bit with fsdp2": (["method.type=qlora", "method.qlora.bits=8", "parallel.strategy=fsdp2"],
                         "8-bit (LLM.int8) weights cannot be sharded"),
    "4-bit sharded without matching storage": (["method.type=qlora", "parallel.strategy=fsdp2"],
                                               "needs method.qlora.quant_storage=float32"),
    "qlora with offload": (["method.type=qlora", "parallel.strategy=zero3", "method.qlora.quant_storage=float32",
                            "parallel.offload=optimizer"], "quantized base weights are not offloaded"),
    "fp16 on cpu": (["parallel.mixed_precision=fp16"], "fp16 needs a GPU"),
    "bf16 compute over fp16 weights": (["parallel.mixed_precision=bf16", "model.dtype=float16"],
                                       "mixed precision keeps float32 master weights"),
    "gradual unfreezing with zero": (["method.type=freeze", "method.freeze.train_top_blocks=1",
                                      "method.freeze.unfreeze_every=5", "parallel.strategy=zero2"],
                                     "works with parallel.strategy=ddp"),
    "freeze with nothing to train": (["method.type=freeze"], "trains nothing"),
    "lora settings with full": (["method.lora.r=4"], "method.lora is set but method.type is full"),
    "deepspeed config for ddp": (["parallel.deepspeed_config=ds_configs/zero2.json"], "read by zero1/zero2/zero3 only"),
    "global batch mismatch": (["train.global_batch_size=24"], "is not micro_batch_size (8) x grad_accum"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_combinations_say_what_works(case):
    overrides, expected = REFUSED[case]
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(QUICKSTART, overrides)


def test_refusal_is_one_line_exit_2_from_the_cli():
    result = llaunch("validate", str(QUICKSTART), "parallel.strategy=zero3", "method.type=qlora",
                     "method.qlora.bits=8")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "use parallel.strategy=ddp/zero1/zero2" in result.stderr


def _ds_config(tmp_path, content: dict) -> str:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(content))
    return f"parallel.deepspeed_config={path}"


def test_deepspeed_config_gets_the_recipes_values(tmp_path):
    recipe = load_recipe(QUICKSTART, ["parallel.strategy=zero3", "parallel.offload=optimizer",
                                      "parallel.mixed_precision=bf16", "train.max_grad_norm=0.5"])
    config = fill_model_sized(resolve(recipe), hidden_size=128)
    assert config["train_micro_batch_size_per_gpu"] == 8 and config["gradient_accumulation_steps"] == 1
    assert config["train_batch_size"] == 16 and config["gradient_clipping"] == 0.5
    assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
    zero = config["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu" and "offload_param" not in zero
    assert zero["reduce_bucket_size"] == 128 * 128 and zero["stage3_param_persistence_threshold"] == 1280


@pytest.mark.parametrize(("content", "expected"), [
    ({"train_micro_batch_size_per_gpu": 4}, r"sets train_micro_batch_size_per_gpu=4 but the recipe's "
                                            r"train.micro_batch_size gives 8"),
    ({"gradient_accumulation_steps": 2}, r"gradient_accumulation_steps=2 but the recipe's train.grad_accum gives 1"),
    ({"gradient_clipping": 0.3}, r"gradient_clipping=0.3 but the recipe's train.max_grad_norm gives 1.0"),
    ({"bf16": {"enabled": True}}, r"bf16.enabled=true but the recipe's parallel.mixed_precision gives false"),
    ({"zero_optimization": {"stage": 3}}, r"zero_optimization.stage=3 but the recipe's parallel.strategy gives 2"),
    ({"zero_optimization": {"offload_optimizer": {"device": "cpu"}}},
     r"offload_optimizer.device=\"cpu\" but the recipe's parallel.offload gives \"none\""),
    ({"optimizer": {"type": "AdamW"}}, r"has a 'optimizer' section, but the recipe owns the optimizer"),
    ({"zero_optimization": {"sub_group_size": "auto"}}, r"sets zero_optimization.sub_group_size=\"auto\""),
])
def test_deepspeed_config_contradicting_the_recipe_names_both_values(tmp_path, content, expected):
    with pytest.raises(UserError, match=expected):
        load_recipe(QUICKSTART, ["parallel.strategy=zero2", _ds_config(tmp_path, content)])


def test_deepspeed_config_auto_and_matching_values_are_accepted(tmp_path):
    content = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 1,
               "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}}
    recipe = load_recipe(QUICKSTART, ["parallel.strategy=zero2", _ds_config(tmp_path, content)])
    assert resolve(recipe)["train_micro_batch_size_per_gpu"] == 8


def test_missing_deepspeed_config_is_named(tmp_path):
    with pytest.raises(UserError, match=r"parallel.deepspeed_config: file .*nope.json not found"):
        load_recipe(QUICKSTART, ["parallel.strategy=zero2", f"parallel.deepspeed_config={tmp_path}/nope.json"])


def _build(overrides: list[str]):
    from launcher.train.model import build_model

    class Tokenizer:  # the model needs only len(tokenizer) and the special token ids
        pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

        def __len__(self):
            return 320

    return build_model(load_recipe(QUICKSTART, overrides), Tokenizer())


@pytest.mark.parametrize(("overrides", "expected"), [
    (["method.type=lora", "method.lora.target_modules=[q_proj,qkv]"],
     r"method.lora.target_modules: 'qkv' matches no module of the model; its linear layers are named "
     r"down_proj, gate_proj, k_proj"),
    (["method.type=lora", "method.lora.modules_to_save=[classifier]"], r"modules_to_save: 'classifier' matches no"),
    (["method.type=freeze", "method.freeze.train_patterns=[qq_proj]"],
     r"train_patterns: 'qq_proj' matches no parameter of the model; names look like model.embed_tokens.weight"),
    (["method.type=freeze", "method.freeze.train_top_blocks=5"], r"the model has only 2 blocks"),
])
def test_target_patterns_that_match_nothing_fail_when_the_model_is_built(overrides, expected):
    with pytest.raises(UserError, match=expected):
        _build(overrides)


def test_freeze_trains_only_the_top_block_and_matching_patterns():
    model = _build(["method.type=freeze", "method.freeze.train_top_blocks=1", "method.freeze.train_patterns=[norm]"])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in model.named_parameters()
                         if name.startswith("model.layers.1.") or "norm" in name}
    assert "model.layers.0.input_layernorm.weight" in trainable  # the pattern reaches below the top block


def test_gradual_unfreezing_adds_one_block_every_n_steps():
    from launcher.recipe.schema import FreezeSpec
    from launcher.train.methods.freeze import GradualUnfreeze

    model = _build(["method.type=freeze", "method.freeze.train_top_blocks=0", "method.freeze.train_patterns=[lm_head]",
                    "train.max_steps=30"])
    schedule = GradualUnfreeze(model, FreezeSpec(train_top_blocks=0, unfreeze_every=10), max_steps=30)
    assert [schedule.trainable_at(step) for step in (0, 9, 10, 19, 20, 29)] == [0, 0, 1, 1, 2, 2]
    assert len(schedule.eventually_trainable()) == sum(1 for _ in model.model.layers.parameters())
    assert schedule.apply(10) and not schedule.apply(15)
    top = {id(p) for p in model.model.layers[1].parameters()}
    assert all(p.requires_grad == (id(p) in top) for p in model.model.layers.parameters())


def test_lora_trains_a_new_classification_head_fully():
    from transformers import AutoModelForTokenClassification, BertConfig

    from launcher.recipe.schema import LoraSpec
    from launcher.train.methods.lora import apply_lora

    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        vocab_size=100, num_labels=5)
    model = apply_lora(AutoModelForTokenClassification.from_config(config), LoraSpec())
    full = {name for name, p in model.named_parameters() if p.requires_grad and "lora_" not in name}
    assert full == {"base_model.model.classifier.modules_to_save.default.weight",
                    "base_model.model.classifier.modules_to_save.default.bias"}
    assert not any("classifier.lora_" in name for name, _ in model.named_parameters())
