"""Export a Hugging Face model directory (safetensors + config + tokenizer) that loads offline.

`export_model` writes a live model (end of a run); `export_checkpoint` consolidates a sharded DCP
checkpoint in one process (DCP reshards on load, so any world size's checkpoint works).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from launcher.checkpoints import complete_checkpoints, step_dir
from launcher.errors import UserError
from launcher.rundir import RunDir
from launcher.train.model import DTYPES, build_model


def export_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def export_checkpoint(run: RunDir, step: int | None, out: Path | None, dtype: str) -> Path:
    complete = dict(complete_checkpoints(run.checkpoints))
    if not complete:
        raise UserError(f"{run.checkpoints}: no complete checkpoint to export")
    if step is None:
        step = max(complete)
    if step not in complete:
        raise UserError(f"--step {step}: no complete checkpoint {step_dir(run.checkpoints, step)}; "
                        f"complete steps: {', '.join(map(str, sorted(complete)))}")
    out = out or run.path / "exports" / f"step-{step:06d}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose another directory")
    recipe = run.load_recipe()
    tokenizer = AutoTokenizer.from_pretrained(run.tokenizer)
    model = build_model(recipe, tokenizer)
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(complete[step]), no_dist=True)
    model.load_state_dict(state["model"])
    return export_model(model.to(DTYPES[dtype]), tokenizer, out)
