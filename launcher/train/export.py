"""Export a Hugging Face model directory (safetensors + config + tokenizer) that loads offline.

`export_model` writes a live model (end of a run); `export_checkpoint` consolidates a sharded DCP
checkpoint in one process (DCP reshards on load, so any world size's checkpoint works).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from launcher.checkpoints import best_checkpoint, complete_checkpoints, step_dir
from launcher.errors import UserError
from launcher.rundir import RunDir
from launcher.train.model import DTYPES, build_model


def export_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def pick_checkpoint(run: RunDir, step: int | None, best: bool = False) -> tuple[int, Path]:
    """The complete checkpoint at `step`, the one marked BEST, or the newest."""
    complete = dict(complete_checkpoints(run.checkpoints))
    if not complete:
        raise UserError(f"{run.checkpoints}: no complete checkpoint")
    if best:
        found = best_checkpoint(run.checkpoints)
        if found is None:
            raise UserError(f"{run.checkpoints}: no checkpoint is marked BEST (set eval.metric to track one)")
        return found
    if step is None:
        step = max(complete)
    if step not in complete:
        raise UserError(f"--step {step}: no complete checkpoint {step_dir(run.checkpoints, step)}; "
                        f"complete steps: {', '.join(map(str, sorted(complete)))}")
    return step, complete[step]


def load_checkpoint_model(run: RunDir, path: Path):
    """(model, tokenizer) of a run's DCP checkpoint, consolidated in this one process."""
    import json

    from launcher.train.objectives import build_objective

    recipe = run.load_recipe()
    tokenizer = AutoTokenizer.from_pretrained(run.tokenizer)
    task = run.path / "objective.json"
    labels = json.loads(task.read_text()).get("labels") if task.is_file() else None
    model = build_model(recipe, tokenizer, build_objective(recipe, tokenizer, labels).head_config())
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(path), no_dist=True)
    model.load_state_dict(state["model"])
    return model, tokenizer


def export_checkpoint(run: RunDir, step: int | None, out: Path | None, dtype: str, best: bool = False) -> Path:
    step, path = pick_checkpoint(run, step, best)
    out = out or run.path / "exports" / f"step-{step:06d}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose another directory")
    model, tokenizer = load_checkpoint_model(run, path)
    export_model(model.to(DTYPES[dtype]), tokenizer, out)
    task = run.path / "objective.json"
    if task.is_file():
        (out / task.name).write_text(task.read_text())
    return out
