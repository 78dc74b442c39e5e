"""Export a Hugging Face model directory (safetensors + config + tokenizer) that loads offline."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase


def export_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
