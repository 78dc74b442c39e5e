"""Attention for packed SFT rows: SDPA per example instead of one SDPA under a block-diagonal mask.

A packed micro batch is one row of several examples (DataCollatorWithFlattening) with their boundaries in
`cu_seq_lens_q`. transformers runs per-example (varlen) kernels for it only with flash-attention, a CUDA
package; with "sdpa" it builds a block-diagonal mask over the whole row and SDPA computes every block of
it, masked or not: 8 examples of ~190 tokens packed into 1,500 cost 8x the attention work, which on CPU
ate all that packing saved (bench/packing.py). Written by hand: no library has varlen attention outside
flash-attention's CUDA kernels. Registered under its own name through transformers' attention interface.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "llaunch_packed_sdpa"


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' SDPA attention, except that a packed row runs one causal SDPA per example.

    Anything else goes to transformers' SDPA as before: rows without boundaries (eval generation), a KV
    cache, and attention that is not plain causal (sliding windows, encoders).
    """
    bounds = kwargs.get("cu_seq_lens_q")
    plain_causal = getattr(module, "is_causal", True) and getattr(module, "sliding_window", None) is None
    if bounds is None or not plain_causal or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    edges = _edges(bounds)
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    parts = [torch.nn.functional.scaled_dot_product_attention(
        query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], dropout_p=dropout, scale=scaling,
        is_causal=True, enable_gqa=gqa) for start, end in zip(edges, edges[1:])]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


_last_edges: tuple[torch.Tensor, list[int]] | None = None


def _edges(bounds: torch.Tensor) -> list[int]:
    """The boundaries as ints, read once per forward: every layer gets the same tensor, and reading a device
    tensor waits for the device (one wait per layer would stall a GPU's queue as many times)."""
    global _last_edges
    if _last_edges is None or _last_edges[0] is not bounds:
        _last_edges = (bounds, bounds.tolist())
    return _last_edges[1]


def use_packed_attention(model: PreTrainedModel) -> None:
    """Switch a decoder that runs transformers' SDPA attention (Llama, Qwen, Mistral, ...) to the packed one."""
    if getattr(model, "_supports_attention_backend", False) and model.config._attn_implementation == "sdpa":
        AttentionInterface.register(NAME, packed_sdpa_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # batches without boundaries (eval generation) as before
        model.set_attn_implementation(NAME)
