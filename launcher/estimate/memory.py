"""Bytes per device for one engine x method: parameters, gradients, optimizer states, activations, buffers.

Pure arithmetic over the model's tensor shapes (no torch). What each engine holds, per data-parallel
rank, with N ranks, T trainable and P total parameters, w the bytes of model.dtype and c the compute
bytes (2 under bf16/fp16 mixed precision, else w):

  ddp     params P*w; grads T*w; AdamW states 2*T*w
  fsdp2   params, grads and states sharded over N (P*w/N, T*w/N, 2*T*w/N); two blocks gathered at a time
  zero1   params P*c; grads T*c; fp32 master + states 3*T*4/N (master shares the params in fp32 zero3)
  zero2   as zero1 but grads T*c/N (+ the parameter straddling the partition boundary)
  zero3   params P*c/N (tensors under stage3_param_persistence_threshold stay whole); grads T*c/N + fp32 T*4/N
  offload optimizer: master, states and the fp32 gradients move to CPU; offload params: parameters too

These are the sizes the engines really allocate (tests/integration/test_estimate_real.py counts them on CPU).
Activations are an estimate (saved tensors of a llama/BERT block, logits in fp32 for the loss).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from launcher.estimate.shapes import ModelShape, Tensor

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Setup:
    """One engine x method to estimate, with the recipe's batch and precision settings."""
    strategy: str                       # ddp | fsdp2 | zero1 | zero2 | zero3
    offload: str = "none"               # none | optimizer | params
    method: str = "full"                # full | freeze | lora | qlora
    world_size: int = 1
    dtype: str = "float32"              # model.dtype
    mixed_precision: str = "fp32"
    micro_batch: int = 1
    seq_len: int = 2048
    activation_checkpointing: bool = False
    lora_r: int = 8
    lora_targets: str | tuple[str, ...] = "all-linear"
    lora_modules_to_save: tuple[str, ...] = ()
    use_dora: bool = False
    qlora_bits: int = 4
    double_quant: bool = True
    freeze_top_blocks: int = 0
    freeze_patterns: tuple[str, ...] = ()
    zero: dict = field(default_factory=dict)  # zero_optimization section with model-sized values filled in


@dataclass(frozen=True)
class Estimate:
    """Bytes per rank: on the device, and (offload) in host memory."""
    params: float
    grads: float
    optimizer: float
    activations: float
    buffers: float
    trainable: int
    params_cpu: float = 0.0
    grads_cpu: float = 0.0
    optimizer_cpu: float = 0.0
    buffers_cpu: float = 0.0

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations + self.buffers

    @property
    def cpu(self) -> float:
        return self.params_cpu + self.grads_cpu + self.optimizer_cpu + self.buffers_cpu


def estimate(shape: ModelShape, s: Setup) -> Estimate:
    n, w = s.world_size, DTYPE_BYTES[s.dtype]
    mixed = s.mixed_precision != "fp32"
    c = 2 if mixed else w
    frozen_bytes, t, adapters, largest = _param_bytes(shape, s, w)  # largest: biggest trainable tensor
    tw = 4 if s.method in ("lora", "qlora") else w  # bytes per trainable parameter (peft keeps adapters in fp32)
    total = frozen_bytes + 4 * adapters + (t - adapters) * (4 if s.method == "qlora" else w)
    stage = int(s.strategy[-1]) if s.strategy.startswith("zero") else 0
    off_opt, off_par = s.offload in ("optimizer", "params"), s.offload == "params"
    acts = activation_bytes(shape, s)
    cpu = {"params_cpu": 0.0, "grads_cpu": 0.0, "optimizer_cpu": 0.0, "buffers_cpu": 0.0}

    if s.strategy == "ddp":
        return Estimate(total, t * tw, 2 * t * tw, acts, 0.0, t)
    if s.strategy == "fsdp2":
        params, grads, optim = total / n, t * tw / n, 2 * t * tw / n
        block = _block_numel(shape)
        buffers = 2 * block * c + block * 4  # two gathered blocks (current + prefetch), one block's fp32 grads
        if off_par:  # CPUOffloadPolicy: sharded params, grads and the optimizer step live on the host
            return Estimate(0.0, 0.0, 0.0, acts, buffers, t, params, grads, optim)
        return Estimate(params, grads, optim, acts, buffers, t)

    zero = s.zero
    params = _recast(total, w, c, s.method) if mixed else total
    master = 0 if (stage == 3 and not mixed) else t * 4 / n  # fp32 zero3 steps its own partitions
    optim = master + 2 * t * 4 / n
    bucket = zero.get("reduce_bucket_size", 5e8)
    threshold = zero.get("stage3_param_persistence_threshold", 1e5)
    persistent = sum(x.numel for x in shape.tensors if x.numel < threshold) * c
    if stage == 3:
        params = (params - persistent) / n + persistent  # small tensors stay whole on every rank
        grads = t * c / n + (0 if off_opt else t * 4 / n)  # gradient partition + fp32 copy for the step
        buffers = bucket * c + zero.get("stage3_prefetch_bucket_size", 5e7) * c
    else:
        # zero2: a parameter straddling the partition boundary keeps its whole gradient (on average half one)
        grads = t * c if stage == 1 else t * c / n + largest * c / 2
        buffers = bucket * c * (2 if zero.get("overlap_comm") and stage == 2 else 1)
    if off_opt:
        cpu["optimizer_cpu"], optim = optim, 0.0
        cpu["grads_cpu"] = 2 * t * 4 / n  # the fp32 gradient partition and its staging copy
        if stage < 3:  # staging buffers for the largest parameter's gradient, one each side
            buffers += largest * c
            cpu["buffers_cpu"] = largest * 4
    if off_par and stage == 3:
        cpu["params_cpu"], params = params - persistent, persistent
    return Estimate(params, grads, optim, acts, buffers, t, **cpu)


def _param_bytes(shape: ModelShape, s: Setup, w: int) -> tuple[float, int, int, int]:
    """(bytes of the frozen base, trainable parameters, adapter parameters, numel of the largest trainable tensor)."""
    if s.method == "full":
        return 0.0, shape.numel, 0, max(x.numel for x in shape.tensors)
    if s.method == "freeze":
        first = shape.num_layers - s.freeze_top_blocks
        train = [x.numel for x in shape.tensors if (x.block is not None and x.block >= first)
                 or any(re.search(p, x.name) for p in s.freeze_patterns)]
        return (shape.numel - sum(train)) * w, sum(train), 0, max(train, default=0)
    targets = [x for x in shape.tensors if _targeted(x, s.lora_targets)]
    adapter = sum(s.lora_r * (x.shape[0] + x.shape[1]) + (x.shape[0] if s.use_dora else 0) for x in targets)
    saved = [x.numel for x in shape.tensors
             if s.lora_modules_to_save and _module(x.name).endswith(tuple(s.lora_modules_to_save))]
    largest = max([s.lora_r * max(x.shape) for x in targets] + saved, default=0)
    if s.method == "lora":
        return shape.numel * w, adapter + sum(saved), adapter, largest
    quantized = [x for x in shape.tensors if x.linear]
    q_numel = sum(x.numel for x in quantized)
    if s.qlora_bits == 4:
        constants = q_numel / 64 * (1 + 4 / 256) if s.double_quant else q_numel / 64 * 4
        q_bytes = q_numel / 2 + constants
    else:
        q_bytes = q_numel + sum(x.shape[0] * 4 for x in quantized)  # int8 weights + a float scale per row
    rest = shape.numel - q_numel
    return q_bytes + rest * 4, adapter + sum(saved), adapter, largest  # prepare_model_for_kbit_training upcasts the rest


def _recast(total: float, w: int, c: int, method: str) -> float:
    """DeepSpeed's bf16/fp16 modes cast the module's parameters to the compute dtype (not 4/8-bit weights)."""
    return total if method == "qlora" else total * c / w


def _module(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _targeted(x: Tensor, targets: str | tuple[str, ...]) -> bool:
    if not x.name.endswith(".weight") or not x.linear:
        return False
    if targets == "all-linear":
        return True
    module = _module(x.name)
    return any(module == t or module.endswith("." + t) for t in targets)


def _block_numel(shape: ModelShape) -> int:
    return sum(x.numel for x in shape.tensors if x.block == 0)


def activation_bytes(shape: ModelShape, s: Setup) -> float:
    """Saved activations of one micro batch, plus the fp32 logits and their gradient (the loss upcasts)."""
    tokens = s.micro_batch * s.seq_len
    a = 2 if s.mixed_precision != "fp32" else DTYPE_BYTES[s.dtype]
    h, hd = shape.hidden, shape.head_dim
    layers = shape.num_layers
    if s.method == "freeze" and not s.freeze_patterns:
        layers = s.freeze_top_blocks  # nothing below the lowest trained block needs its activations
    if shape.decoder:  # norms in/out, q k v, attention out (+ o_proj input), gate, up, act, product
        per_token = 4 * h + 3 * shape.heads * hd + 2 * shape.kv_heads * hd + 4 * shape.intermediate
        per_layer = tokens * per_token * a
    else:  # BERT with eager attention (Korthikanti et al.): 34 h bytes/token in 16 bit + 5 heads*s scores
        per_layer = tokens * (34 * h + 5 * shape.heads * s.seq_len) * a / 2
    if s.activation_checkpointing:
        stored = layers * tokens * h * a + per_layer  # block inputs, and one block recomputed at a time
    else:
        stored = layers * per_layer
    logits = tokens * shape.vocab * (a + 4 + 4)
    return stored + logits
