"""Build the model: from a local directory or from a config; seeded so every rank starts equal."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_model(recipe: Recipe, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    spec = recipe.model
    dtype = DTYPES[spec.dtype]
    if spec.path is not None:
        return AutoModelForCausalLM.from_pretrained(spec.path, dtype=dtype, trust_remote_code=spec.trust_remote_code)
    settings = dict(spec.config)
    model_type = settings.pop("type")
    settings.setdefault("vocab_size", len(tokenizer))
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        settings.setdefault(name, getattr(tokenizer, name))
    try:
        config = AutoConfig.for_model(model_type, **settings)
    except (ValueError, TypeError) as exc:
        raise UserError(f"model.config: {exc}") from None
    torch.manual_seed(recipe.train.seed)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)

