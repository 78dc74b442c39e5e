"""Model FLOPs utilisation (MFU): the FLOPs a step's tokens need by the model's arithmetic, over what the
devices could do at their peak in the same time.

FLOPs per token follow PaLM (Chowdhery et al. 2022, "PaLM: Scaling Language Modeling with Pathways",
appendix B), as torchtitan and Megatron count them: 6N for the weight matmuls (2N forward, 2N for the
input gradients, 2N for the weight gradients) plus 12 * layers * hidden * seq_len for the attention scores
and their weighted sum (forward and backward, no saving for the causal half). N counts the weights that
take part in a matmul: the input embedding is a lookup, unless it is tied to the output head. A frozen
weight gets no weight gradient, so LoRA, QLoRA and freeze count 4N for the frozen weights and 6 for each
trainable one. seq_len is the recipe's data.seq_len (packed SFT examples attend over less: their MFU is a
little high there).

The peak is one device's dense bf16 tensor throughput from the vendor's data sheet, by device name, or
logging.peak_tflops. On a CPU or an unknown device (and no logging.peak_tflops) there is no MFU.
"""

from __future__ import annotations

from typing import Any

from launcher.errors import UserError
from launcher.estimate.shapes import ModelShape, model_shape

# dense bf16 TFLOP/s (no sparsity) per device; the first name contained in the device's name wins
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H100", 989.0), ("H200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10", 125.0),
    ("RTX 4090", 165.0), ("MI300X", 1307.0), ("MI250X", 383.0),
)


def matmul_weights(shape: ModelShape) -> int:
    """N: the weight matrices used in a matmul. Embedding tables are lookups, except a decoder's table tied to
    its output head (no lm_head.weight of its own); norms and biases are not matrices."""
    n = sum(t.numel for t in shape.tensors if len(t.shape) == 2 and "embed" not in t.name)
    tied = shape.decoder and not any(t.name == "lm_head.weight" for t in shape.tensors)
    return n + (shape.vocab * shape.hidden if tied else 0)


def flops_per_token(shape: ModelShape, seq_len: int, trainable: int | None = None) -> float:
    """Training FLOPs per token: 4N + 2 * trainable matmul weights (N when all train) + 12 * L * hidden * seq."""
    n = matmul_weights(shape)
    trained = n if trainable is None else min(trainable, n)
    return 4 * n + 2 * trained + 12 * shape.num_layers * shape.heads * shape.head_dim * seq_len


def peak_tflops(device_name: str) -> float | None:
    for name, peak in PEAK_BF16_TFLOPS:
        if name.lower() in device_name.lower():
            return peak
    return None


def mfu(tokens_per_s: float, per_token: float, peak: float, devices: int) -> float:
    """The fraction of `devices` devices' peak (TFLOP/s each) that tokens_per_s (all devices together) use."""
    return tokens_per_s * per_token / (peak * 1e12 * devices)


def run_mfu(recipe, model, device, world_size: int, tokens_per_s: float) -> float | None:
    """The train loop's MFU, or None where the peak or the model's shape is unknown."""
    peak = recipe.logging.peak_tflops or _device_peak(device)
    if peak is None:
        return None
    config: dict[str, Any] = model.config.to_dict()
    try:
        shape = model_shape(config)
    except UserError:  # a model type the estimator does not know (t5, gpt2, ...): no FLOPs count
        return None
    trainable = None if recipe.method.type == "full" else sum(
        getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
    return mfu(tokens_per_s, flops_per_token(shape, recipe.data.seq_len, trainable), peak, world_size)


def _device_peak(device) -> float | None:
    if device.type != "cuda":
        return None
    import torch

    return peak_tflops(torch.cuda.get_device_name(device))
