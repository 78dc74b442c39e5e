"""Which engine x method x precision combinations work, checked before anything starts (no torch).

Each rule raises a ValueError that says what would work instead. Target patterns that match no
module are checked later, when the worker builds the model (launcher/train/methods).
"""

from __future__ import annotations

from launcher.recipe import ds_config

SHARDED = ("fsdp2", "zero3")  # engines that shard the parameters themselves


def check(recipe) -> None:
    _offload(recipe)
    _precision(recipe)
    _method(recipe)
    if recipe.parallel.is_deepspeed:
        ds_config.resolve(recipe)
    elif recipe.parallel.deepspeed_config is not None:
        raise ValueError(f"parallel.deepspeed_config is read by zero1/zero2/zero3 only, not by "
                         f"parallel.strategy={recipe.parallel.strategy}; remove it or pick a zero strategy")


def _offload(recipe) -> None:
    p = recipe.parallel
    if p.offload == "none":
        return
    if p.strategy == "ddp":
        raise ValueError(f"parallel.offload={p.offload} needs a sharding engine: use parallel.strategy=zero1/zero2/"
                         f"zero3 (optimizer), zero3 or fsdp2 (params), or parallel.offload=none with ddp")
    if p.strategy == "fsdp2" and p.offload == "optimizer":
        raise ValueError("parallel.offload=optimizer with fsdp2: FSDP2 offloads parameters, gradients and the optimizer "
                         "step together; use parallel.offload=params, or zero1/zero2/zero3 for optimizer-only offload")
    if p.offload == "params" and p.strategy in ("zero1", "zero2"):
        raise ValueError(f"parallel.offload=params with {p.strategy}: only zero3 (or fsdp2) shards parameters; "
                         f"use parallel.strategy=zero3, or parallel.offload=optimizer")
    if recipe.method.type == "qlora":
        raise ValueError("parallel.offload with method.type=qlora: quantized base weights are not offloaded; "
                         "use parallel.offload=none (the 4-bit base is already small)")


def _precision(recipe) -> None:
    mp, dtype = recipe.parallel.mixed_precision, recipe.model.dtype
    if mp == "fp16" and recipe.resources.device == "cpu":
        raise ValueError("parallel.mixed_precision=fp16 needs a GPU; on resources.device=cpu use bf16 or fp32")
    half = {"bf16": "bfloat16", "fp16": "float16"}
    if mp in half and dtype != "float32" and dtype != half[mp]:
        raise ValueError(f"parallel.mixed_precision={mp} with model.dtype={dtype}: mixed precision keeps float32 "
                         f"master weights; set model.dtype=float32 (or mixed_precision=fp32 to train in {dtype})")
    if mp == "fp32" and dtype == "float16" and recipe.method.type in ("full", "freeze"):
        raise ValueError("model.dtype=float16 with full/freeze training has no loss scaling and diverges; use "
                         "model.dtype=float32 with parallel.mixed_precision=fp16, or bfloat16")


def _method(recipe) -> None:
    m, p = recipe.method, recipe.parallel
    if m.type == "freeze" and m.freeze.unfreeze_every is not None and p.strategy != "ddp":
        raise ValueError(f"method.freeze.unfreeze_every (gradual unfreezing) works with parallel.strategy=ddp; "
                         f"{p.strategy} fixes the trainable parameters when it wraps the model")
    if m.type != "qlora":
        return
    q = m.qlora
    if q.bits == 8 and p.strategy in SHARDED:
        raise ValueError(f"method.qlora.bits=8 with {p.strategy}: 8-bit (LLM.int8) weights cannot be sharded; use "
                         f"parallel.strategy=ddp/zero1/zero2, or bits=4 with method.qlora.quant_storage="
                         f"{recipe.model.dtype}")
    if q.bits == 4 and p.strategy in SHARDED and q.quant_storage != recipe.model.dtype:
        raise ValueError(f"method.qlora.bits=4 with {p.strategy} needs method.qlora.quant_storage={recipe.model.dtype} "
                         f"(= model.dtype) so the packed weights shard like the other parameters "
                         f"(got {q.quant_storage}); or use parallel.strategy=ddp")
    if q.bits == 8 and p.mixed_precision != "fp32":
        raise ValueError("method.qlora.bits=8 runs its matmuls in the model dtype; use parallel.mixed_precision=fp32 "
                         "(set model.dtype for the compute dtype)")
