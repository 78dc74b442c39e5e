"""LoRA (peft) and QLoRA (a bitsandbytes 4/8-bit base with LoRA on top)."""

from __future__ import annotations

import tempfile

import torch
from safetensors.torch import save_model
from transformers import BitsAndBytesConfig, PreTrainedModel

from launcher.errors import UserError
from launcher.recipe.schema import LoraSpec, Recipe
from launcher.train.dtypes import DTYPES



def apply_lora(model: torch.nn.Module, spec: LoraSpec, gradient_checkpointing: bool = False) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    _check_targets(model, spec)
    heads = task_heads(model)
    config = LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules,
        modules_to_save=(spec.modules_to_save + [h for h in heads if h not in spec.modules_to_save]) or None,
        exclude_modules=heads or None, use_dora=spec.use_dora,
    )
    if gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    return get_peft_model(model, config)


HEADS = ("classifier", "score", "qa_outputs")  # the task heads transformers creates for classification / QA


def task_heads(model: torch.nn.Module) -> list[str]:
    """A classification or QA model's new head trains fully (modules_to_save), without an adapter."""
    if not type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification",
                                          "ForQuestionAnswering")):
        return []
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [head for head in HEADS if head in names]


def _check_targets(model: torch.nn.Module, spec: LoraSpec) -> None:
    names = [name for name, _ in model.named_modules() if name]
    linear = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    targets = [] if spec.target_modules == "all-linear" else _as_list(spec.target_modules)
    for key, wanted in (("target_modules", targets), ("modules_to_save", spec.modules_to_save)):
        for target in wanted:
            if not any(name == target or name.endswith("." + target) for name in names):
                leaves = sorted({name.rsplit(".", 1)[-1] for name in linear})
                raise UserError(f"method.lora.{key}: {target!r} matches no module of the model; "
                                f"its linear layers are named {', '.join(leaves)}")


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def quantization_config(recipe: Recipe) -> BitsAndBytesConfig:
    q = recipe.method.qlora
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=DTYPES[q.compute_dtype or recipe.model.dtype],
        bnb_4bit_quant_storage=getattr(torch, q.quant_storage),
    )


def quantized_device_map(recipe: Recipe) -> dict[str, int | str]:
    on_gpu = recipe.resources.device == "cuda" or (recipe.resources.device == "auto" and torch.cuda.is_available())
    return {"": torch.cuda.current_device() if on_gpu else "cpu"}


def load_quantized(model_class, model_dir: str, recipe: Recipe, **kwargs) -> PreTrainedModel:
    return model_class.from_pretrained(
        model_dir, quantization_config=quantization_config(recipe), device_map=quantized_device_map(recipe),
        dtype=DTYPES[recipe.model.dtype], **kwargs,
    )


def apply_qlora(model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
    """Quantize (a model built from a config goes through a temporary directory), prepare, add LoRA."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_quantized", False):
        with tempfile.TemporaryDirectory(prefix="llaunch-qlora-") as tmp:
            # written by hand: save_pretrained writes on rank 0 only, and every rank quantizes its own copy
            model.config.save_pretrained(tmp)
            save_model(model, f"{tmp}/model.safetensors", metadata={"format": "pt"})
            model = load_quantized(type(model), tmp, recipe)
    for module in model.modules():
        # bitsandbytes repacks a 4-bit weight for its AVX512-BF16 CPU inference kernel on the first no-grad
        # eval forward and keeps it packed, so training after an eval rounds differently: a run resumed
        # from a checkpoint (no eval at step 0) would drift from the uninterrupted one
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    checkpointing = recipe.parallel.activation_checkpointing
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
    )
    return apply_lora(model, recipe.method.lora)
