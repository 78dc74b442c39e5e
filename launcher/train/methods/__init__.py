"""The recipe's method (full, freeze with gradual unfreezing, LoRA, QLoRA): it prepares the model and tells
the engine and the export what trains and what a checkpoint holds, so neither asks which method it is.

Applied after the model is built and before the engine wraps it. Target patterns that match nothing
are a UserError here, before any training step.
"""

from __future__ import annotations

import torch

from launcher.recipe.schema import Recipe

ADAPTERS = ("lora", "qlora")


class Method:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self._unfreeze = None  # GradualUnfreeze, once apply() has seen the model

    @property
    def checkpoints_trainable_only(self) -> bool:
        """Checkpoints hold the trainable parameters only (adapters): the frozen base is rebuilt from the recipe."""
        return self.recipe.method.type in ADAPTERS

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        method = self.recipe.method
        checkpointing = self.recipe.parallel.activation_checkpointing
        if checkpointing and method.type != "qlora":  # qlora: prepare_model_for_kbit_training turns it on
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if method.type == "freeze":
            from launcher.train.methods.freeze import GradualUnfreeze, apply_freeze

            model = apply_freeze(model, method.freeze)
            if method.freeze.unfreeze_every is not None:
                self._unfreeze = GradualUnfreeze(model, method.freeze, self.recipe.train.max_steps)
            return model
        if method.type == "lora":
            from launcher.train.methods.lora import apply_lora

            return apply_lora(model, method.lora, gradient_checkpointing=checkpointing)
        if method.type == "qlora":
            from launcher.train.methods.lora import apply_qlora

            return apply_qlora(model, self.recipe)
        return model

    def optimizer_parameters(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """What the optimizer holds from the start: the trainable parameters, and with gradual unfreezing
        also those that start training before the run ends."""
        later = {id(p) for p in self._unfreeze.eventually_trainable()} if self._unfreeze else set()
        return [p for p in model.parameters() if p.requires_grad or id(p) in later]

    def begin_step(self, step: int) -> bool:
        """Set what trains at `step`; True when that changed (the engine then re-registers its parameters)."""
        return bool(self._unfreeze and self._unfreeze.apply(step))

    def load_kwargs(self) -> dict:
        """Extra from_pretrained arguments that load a model directory straight into 4/8 bits (qlora)."""
        if self.recipe.method.type != "qlora":
            return {}
        from launcher.train.methods.lora import quantization_config, quantized_device_map

        return {"quantization_config": quantization_config(self.recipe),
                "device_map": quantized_device_map(self.recipe)}
