"""Parameter shapes of a model from its config alone: no torch, no weights (llama-style decoders, BERT encoders).

Each tensor is listed with its shape and role, so the estimator can apply LoRA targets, freezing, 4/8-bit
quantization and ZeRO-3's persistence threshold tensor by tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.errors import UserError

DECODERS = ("llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2")
ENCODERS = ("bert", "roberta")
# transformers' defaults for keys a config may leave out
LLAMA_DEFAULTS = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False,
                  "attention_bias": False, "mlp_bias": False}
BERT_DEFAULTS = {"vocab_size": 30522, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                 "num_attention_heads": 12, "max_position_embeddings": 512, "type_vocab_size": 2}


@dataclass(frozen=True)
class Tensor:
    name: str            # e.g. model.layers.3.self_attn.q_proj.weight
    shape: tuple[int, ...]
    block: int | None    # transformer block index, None outside the blocks
    linear: bool         # a weight of an nn.Linear inside the blocks (LoRA "all-linear" targets, quantized)

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    tensors: tuple[Tensor, ...]
    num_layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    decoder: bool

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)


def read_config(recipe) -> dict[str, Any]:
    """The model's config as a dict: config.json of model.path, or the recipe's model.config."""
    if recipe.model.path:
        path = Path(recipe.model.path) / "config.json"
        if not path.is_file():
            raise UserError(f"model.path {recipe.model.path}: no config.json to estimate from")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"model.path {path}: not valid JSON") from None
    config = dict(recipe.model.config)
    config["model_type"] = config.pop("type")
    if "vocab_size" not in config and recipe.tokenizer.train is not None:
        config["vocab_size"] = recipe.tokenizer.train.vocab_size  # the worker sizes it from the tokenizer
    return config


def model_shape(config: dict[str, Any]) -> ModelShape:
    model_type = config.get("model_type", "")
    if model_type in DECODERS:
        return _decoder(model_type, {**LLAMA_DEFAULTS, **config})
    if model_type in ENCODERS:
        return _encoder(model_type, {**BERT_DEFAULTS, **config})
    raise UserError(f"estimate: model_type {model_type!r} is not known; the estimator knows "
                    f"{', '.join(DECODERS + ENCODERS)}")


def _decoder(model_type: str, c: dict[str, Any]) -> ModelShape:
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or h // heads
    qkv_bias = c["attention_bias"] or model_type == "qwen2"
    out: list[Tensor] = [Tensor("model.embed_tokens.weight", (vocab, h), None, False)]
    for i in range(layers):
        p = f"model.layers.{i}."
        for name, shape, bias in (("self_attn.q_proj", (heads * hd, h), qkv_bias),
                                  ("self_attn.k_proj", (kv * hd, h), qkv_bias),
                                  ("self_attn.v_proj", (kv * hd, h), qkv_bias),
                                  ("self_attn.o_proj", (h, heads * hd), c["attention_bias"]),
                                  ("mlp.gate_proj", (inter, h), c["mlp_bias"]),
                                  ("mlp.up_proj", (inter, h), c["mlp_bias"]),
                                  ("mlp.down_proj", (h, inter), c["mlp_bias"])):
            out.append(Tensor(p + name + ".weight", shape, i, True))
            if bias:
                out.append(Tensor(p + name + ".bias", (shape[0],), i, False))
        if model_type == "qwen3":
            out += [Tensor(p + "self_attn.q_norm.weight", (hd,), i, False),
                    Tensor(p + "self_attn.k_norm.weight", (hd,), i, False)]
        out += [Tensor(p + "input_layernorm.weight", (h,), i, False),
                Tensor(p + "post_attention_layernorm.weight", (h,), i, False)]
    out.append(Tensor("model.norm.weight", (h,), None, False))
    if not c["tie_word_embeddings"]:
        out.append(Tensor("lm_head.weight", (vocab, h), None, False))
    return ModelShape(model_type, tuple(out), layers, h, inter, heads, kv, hd, vocab, decoder=True)


def _encoder(model_type: str, c: dict[str, Any]) -> ModelShape:
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    heads = c["num_attention_heads"]
    e = f"{model_type}.embeddings."
    out = [Tensor(e + "word_embeddings.weight", (vocab, h), None, False),
           Tensor(e + "position_embeddings.weight", (c["max_position_embeddings"], h), None, False),
           Tensor(e + "token_type_embeddings.weight", (c["type_vocab_size"], h), None, False),
           Tensor(e + "LayerNorm.weight", (h,), None, False), Tensor(e + "LayerNorm.bias", (h,), None, False)]
    for i in range(layers):
        p = f"{model_type}.encoder.layer.{i}."
        for name, shape in (("attention.self.query", (h, h)), ("attention.self.key", (h, h)),
                            ("attention.self.value", (h, h)), ("attention.output.dense", (h, h)),
                            ("intermediate.dense", (inter, h)), ("output.dense", (h, inter))):
            out += [Tensor(p + name + ".weight", shape, i, True), Tensor(p + name + ".bias", (shape[0],), i, False)]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out += [Tensor(p + norm + ".weight", (h,), i, False), Tensor(p + norm + ".bias", (h,), i, False)]
    head = "cls.predictions."  # masked-LM head; its decoder weight is tied to the word embeddings
    out += [Tensor(head + "transform.dense.weight", (h, h), None, False),
            Tensor(head + "transform.dense.bias", (h,), None, False),
            Tensor(head + "transform.LayerNorm.weight", (h,), None, False),
            Tensor(head + "transform.LayerNorm.bias", (h,), None, False),
            Tensor(head + "bias", (vocab,), None, False)]
    return ModelShape(model_type, tuple(out), layers, h, inter, heads, heads, h // heads, vocab, decoder=False)
