"""Export what was trained as a plain Hugging Face model directory that loads without peft or bitsandbytes.

full / freeze: the model's weights. lora / qlora: the adapter under `adapter/`, and the base with
the adapter merged in (a quantized base is dequantized first) as the model itself.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def export_trained(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out: Path,
                   state: dict[str, torch.Tensor] | None = None, dtype: torch.dtype | None = None) -> Path:
    """`state`: full weights keyed like model.state_dict() (engines that shard pass the gathered ones);
    `dtype`: of the merged LoRA model (default: the base model's)."""
    peft = sys.modules.get("peft")  # no peft imported, no PeftModel: importing it (and bitsandbytes) costs ~2 s
    if peft is None or not isinstance(model, peft.PeftModel):
        if state is None or _is_own_state(model, state):
            return export_model(model, tokenizer, out)
        out.mkdir(parents=True, exist_ok=True)
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        model.save_pretrained(out, state_dict=_retied(model, state), safe_serialization=True)
        if len(dtypes) == 1:
            _record_dtype(out, dtypes.pop())
        tokenizer.save_pretrained(out)
        return out
    state = dict(model.state_dict() if state is None else state)
    save_adapter(model, tokenizer, out / "adapter", dict(state))
    merged = merged_model(model, state)
    return export_model(merged if dtype is None else merged.to(dtype), tokenizer, out)


def export_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def save_adapter(model, tokenizer: PreTrainedTokenizerBase, out: Path,
                 state: dict[str, torch.Tensor] | None = None) -> Path:
    """The peft adapter directory (adapter_config.json names the base model path); peft picks the adapter
    weights out of `state` (default: the live model's)."""
    model.save_pretrained(out, state_dict=state, save_embedding_layers=False)
    tokenizer.save_pretrained(out)
    return out


def merged_model(model, state: dict[str, torch.Tensor]) -> PreTrainedModel:
    """A CPU replica of the peft model loaded from `state`, with the adapter merged into the base weights."""
    from peft import get_peft_model
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    dtype = next((p.dtype for p in base.parameters() if p.dtype.is_floating_point), torch.float32)
    for name, module in model.named_modules():  # quantized base weights: dequantize to the model dtype
        if isinstance(module, LoraLayer) and _is_quantized(module.get_base_layer()):
            key = f"{name}.base_layer.weight"
            state[key] = _dequantized(module.get_base_layer(), state[key]).to(dtype).cpu()
    config = copy.deepcopy(base.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    with torch.device("meta"):
        replica = get_peft_model(type(base)(config), copy.deepcopy(model.peft_config["default"]))
    wanted = replica.state_dict()
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype) for k, v in state.items() if k in wanted}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise RuntimeError(f"export: weights missing for {missing[:5]}")
    replica.load_state_dict(state, assign=True)
    merged = replica.merge_and_unload()
    merged.tie_weights()
    return merged.to(dtype)


def _is_quantized(layer: torch.nn.Module) -> bool:
    return type(layer).__name__ in ("Linear4bit", "Linear8bitLt")


def _dequantized(layer: torch.nn.Module, packed: torch.Tensor) -> torch.Tensor:
    """`packed`: the layer's full weight as gathered (FSDP2/ZeRO-3 hand back plain tensors in quant_storage)."""
    from peft.utils.integrations import dequantize_module_weight

    if type(layer).__name__ == "Linear8bitLt" or type(packed).__name__ == "Params4bit":
        return dequantize_module_weight(layer)  # the live weight is whole (ddp, zero1/2)
    import bitsandbytes as bnb

    quant_state = getattr(layer.weight, "quant_state", None) or layer.quant_state  # the module keeps a copy
    data = packed.detach().contiguous().view(torch.uint8).view(-1, 1).to(quant_state.absmax.device)
    return bnb.functional.dequantize_4bit(data, quant_state=quant_state)


def _retied(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gathered copies of tied weights (embeddings / lm_head) become one tensor again, so they are saved once."""
    state, first = dict(state), {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if key in state:
            state[key] = state[first.setdefault(id(tensor), key)]
    return state


def _is_own_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return all(own.get(k) is v for k, v in state.items())



def _record_dtype(out: Path, dtype: torch.dtype) -> None:
    """config.json names the live module's dtype; the saved weights may be the fp32 masters (DeepSpeed bf16)."""
    path = out / "config.json"
    config = json.loads(path.read_text())
    config["dtype"] = str(dtype).removeprefix("torch.")
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
