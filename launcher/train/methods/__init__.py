"""Apply the recipe's method to a built model: full, freeze (layer-wise), LoRA or QLoRA.

Runs after the model is built and before the engine wraps it. Target patterns that match
nothing are a UserError here, before any training step.
"""

from __future__ import annotations

import torch

from launcher.recipe.schema import Recipe


def apply_method(model: torch.nn.Module, recipe: Recipe) -> torch.nn.Module:
    method = recipe.method
    checkpointing = recipe.parallel.activation_checkpointing
    if checkpointing and method.type != "qlora":  # qlora: prepare_model_for_kbit_training turns it on
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method.type == "freeze":
        from launcher.train.methods.freeze import apply_freeze

        return apply_freeze(model, method.freeze)
    if method.type == "lora":
        from launcher.train.methods.lora import apply_lora

        return apply_lora(model, method.lora, gradient_checkpointing=checkpointing)
    if method.type == "qlora":
        from launcher.train.methods.lora import apply_qlora

        return apply_qlora(model, recipe)
    return model


def quantized_load_kwargs(recipe: Recipe) -> dict:
    """Extra from_pretrained arguments that load a model directory straight into 4/8 bits (qlora)."""
    if recipe.method.type != "qlora":
        return {}
    from launcher.train.methods.lora import quantization_config, quantized_device_map

    return {"quantization_config": quantization_config(recipe), "device_map": quantized_device_map(recipe)}
