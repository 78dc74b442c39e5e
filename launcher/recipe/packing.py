"""Whether sft packs when the recipe does not say (data.packing unset): yes wherever the model's attention
keeps packed examples apart at full speed, i.e. a decoder that runs transformers' SDPA attention with no
sliding window (launcher/train/packed_attention.py runs one causal SDPA per example there). Elsewhere the
run pads, and `llaunch plan` says why. Reads the model's config.json (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PACKED_ATTENTION = frozenset({"llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2", "granite", "gemma"})


def model_config(model: Any) -> dict[str, Any]:
    """The recipe's model config: `model.config`, or config.json of `model.path` ({} if unreadable)."""
    if model.config:
        return {"model_type": model.config.get("type"), **model.config}
    try:
        return json.loads((Path(model.path) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}


def packing_default(objective: str, model: Any) -> tuple[bool, str]:
    """(pack?, why) for a recipe that leaves data.packing unset."""
    if objective != "sft":
        return False, f"objective {objective}"
    config = model_config(model)
    kind = config.get("model_type")
    if kind not in PACKED_ATTENTION:
        return False, f"model type {kind or 'unknown'} is not one whose attention llaunch packs"
    if config.get("sliding_window") and config.get("use_sliding_window", True):
        return False, f"{kind} with a sliding window"
    return True, f"{kind}: one causal attention per example"
