"""Build the model: from a local directory or from a config; seeded so every rank starts equal."""

from __future__ import annotations

import torch
import transformers
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.train.dtypes import DTYPES
from launcher.train.methods import Method
from launcher.train.methods.blocks import compile_blocks



def model_class(objective: str):
    """The transformers Auto class of an objective's model (causal LM, masked LM, a head, seq2seq)."""
    from launcher.train.objectives import objective_class

    return getattr(transformers, objective_class(objective).auto_class)


def build_model(recipe: Recipe, tokenizer: PreTrainedTokenizerBase, head: dict | None = None,
                method: Method | None = None) -> PreTrainedModel:
    """`head`: config keys the prepared data decides (num_labels, id2label, ...; Objective.head_config);
    `method`: the recipe's method, prepared here (the caller keeps it to ask what trains)."""
    method = method or Method(recipe)
    spec = recipe.model
    dtype = DTYPES[spec.dtype]
    auto = model_class(recipe.objective)
    if spec.path is not None:
        model = auto.from_pretrained(spec.path, dtype=dtype, trust_remote_code=spec.trust_remote_code,
                                     **(head or {}), **method.load_kwargs())
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:  # the objective added tokens (mlm: mask)
            model.resize_token_embeddings(len(tokenizer))
        return _finish(model, recipe, method)
    settings = dict(spec.config)
    model_type = settings.pop("type")
    settings.setdefault("vocab_size", len(tokenizer))
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        settings.setdefault(name, getattr(tokenizer, name))
    for name in ("sep_token_id", "cls_token_id", "mask_token_id"):  # encoders' defaults may lie outside the vocab
        if getattr(tokenizer, name, None) is not None:
            settings.setdefault(name, getattr(tokenizer, name))
    for name, value in (head or {}).items():
        settings.setdefault(name, value)
    try:
        config = AutoConfig.for_model(model_type, **settings)
    except (ValueError, TypeError) as exc:
        raise UserError(f"model.config: {exc}") from None
    torch.manual_seed(recipe.train.seed)
    return _finish(auto.from_config(config, dtype=dtype), recipe, method)


def _finish(model: PreTrainedModel, recipe: Recipe, method: Method) -> PreTrainedModel:
    """Attention for packed rows, then the method (LoRA wraps what is there), then compilation."""
    if recipe.data.packing:
        from launcher.train.packed_attention import use_packed_attention

        use_packed_attention(model)
    model = method.apply(model)
    if recipe.parallel.compile:
        compile_blocks(model)
    return model

