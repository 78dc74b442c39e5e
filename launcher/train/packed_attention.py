"""Attention for packed SFT rows: each example attends only to itself, by the fastest kernel the device has.

A packed micro batch is one row of several examples (DataCollatorWithFlattening) with their boundaries in
`cu_seq_lens_q`. transformers runs per-example (varlen) kernels for it only with flash-attention; with "sdpa"
it builds a block-diagonal mask over the whole row and SDPA computes every block of it, masked or not: 8
examples of ~190 tokens packed into 1,500 cost 8x the attention work (bench/packing.py). So a packed row runs,
picked per call by where the tensors are (packed_path):
- CUDA, bf16/fp16, flash-attn installed: flash-attn's varlen kernel (`flash_attn_varlen_func`, the kernel of
  transformers' flash_attention_2) over the boundaries;
- CUDA otherwise: torch FlexAttention, compiled, with a document mask (create_block_mask from the boundaries):
  one kernel per layer that skips the blocks between examples;
- CPU: one causal SDPA per example. FlexAttention has no backward on CPU (torch 2.13 raises
  NotImplementedError; pytorch/pytorch#169646, #148752), its unfused eager forward materialises the whole
  row's scores (0.4-0.5x this loop's tokens/s, bench/results/packing_attention.json), and compiling it for
  varying row lengths fails in inductor's C++ template.
LLAUNCH_PACKED_ATTENTION=loop|flex|flash forces one (benchmarks and tests; flex on CPU: forward only).
Registered under its own name through transformers' attention interface.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "llaunch_packed_sdpa"  # the name runs before FlexAttention and flash-attn kept
FORCE = "LLAUNCH_PACKED_ATTENTION"
HALF = (torch.bfloat16, torch.float16)


def packed_path(device_type: str, dtype: torch.dtype) -> str:
    """loop, flex or flash: what a packed row on this device and compute dtype runs."""
    forced = os.environ.get(FORCE)
    if forced:
        return forced
    if device_type != "cuda":
        return "loop"
    return "flash" if dtype in HALF and _has_flash_attn() else "flex"


@functools.cache
def _has_flash_attn() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def packed_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' SDPA attention, except that a packed row keeps its examples apart with a varlen kernel.

    Anything else goes to transformers' SDPA as before: rows without boundaries (eval generation), a KV
    cache, and attention that is not plain causal (sliding windows, encoders).
    """
    bounds = kwargs.get("cu_seq_lens_q")
    plain_causal = getattr(module, "is_causal", True) and getattr(module, "sliding_window", None) is None
    if bounds is None or not plain_causal or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    path = packed_path(query.device.type, query.dtype)
    if path == "flash":
        return _flash(query, key, value, bounds, kwargs["max_length_q"], dropout, scaling), None
    if path == "flex" and not dropout:  # FlexAttention has no dropout
        return _flex(query, key, value, bounds, scaling, gqa), None
    return _loop(query, key, value, bounds, dropout, scaling, gqa), None


def _loop(query, key, value, bounds, dropout, scaling, gqa):
    edges = _edges(bounds)
    parts = [torch.nn.functional.scaled_dot_product_attention(
        query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], dropout_p=dropout, scale=scaling,
        is_causal=True, enable_gqa=gqa) for start, end in zip(edges, edges[1:])]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous()


def _flex(query, key, value, bounds, scaling, gqa):
    flex = _compiled_flex() if query.is_cuda else torch.nn.attention.flex_attention.flex_attention
    out = flex(query, key, value, block_mask=_document_mask(bounds, query.shape[2]), scale=scaling, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous()


def _flash(query, key, value, bounds, longest, dropout, scaling):
    from flash_attn import flash_attn_varlen_func

    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, head_dim); GQA as it is
    bounds = bounds.to(torch.int32)
    out = flash_attn_varlen_func(q, k, v, bounds, bounds, longest, longest, dropout_p=dropout, softmax_scale=scaling,
                                 causal=True)
    return out.unsqueeze(0)


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)  # without compile FlexAttention is unfused (the whole score matrix)


_last_edges: tuple[torch.Tensor, list[int]] | None = None
_last_mask: tuple[torch.Tensor, object] | None = None


def _edges(bounds: torch.Tensor) -> list[int]:
    """The boundaries as ints, read once per forward: every layer gets the same tensor, and reading a device
    tensor waits for the device (one wait per layer would stall a GPU's queue as many times)."""
    global _last_edges
    if _last_edges is None or _last_edges[0] is not bounds:
        _last_edges = (bounds, bounds.tolist())
    return _last_edges[1]


@torch.compiler.disable
def _document_mask(bounds: torch.Tensor, length: int):
    """FlexAttention's block mask for the row, built once per forward on the device (no host read): token q
    sees token kv when both are in the same example and kv is not later."""
    global _last_mask
    if _last_mask is None or _last_mask[0] is not bounds:
        from torch.nn.attention.flex_attention import create_block_mask

        example = torch.searchsorted(bounds[1:], torch.arange(length, device=bounds.device), right=True)

        def same_example(batch, head, q, kv):
            return (example[q] == example[kv]) & (q >= kv)

        _last_mask = (bounds, create_block_mask(same_example, None, None, length, length, device=bounds.device,
                                                _compile=bounds.is_cuda))
    return _last_mask[1]


def use_packed_attention(model: PreTrainedModel) -> None:
    """Switch a decoder that runs transformers' SDPA attention (Llama, Qwen, Mistral, ...) to the packed one."""
    if getattr(model, "_supports_attention_backend", False) and model.config._attn_implementation == "sdpa":
        AttentionInterface.register(NAME, packed_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # batches without boundaries (eval generation) as before
        model.set_attn_implementation(NAME)
