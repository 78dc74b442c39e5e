"""Export a Hugging Face model directory (safetensors + config + tokenizer) that loads offline.

`export_checkpoint` consolidates a checkpoint (DCP or DeepSpeed ZeRO, written at any world size) in one
process; methods/export.py writes the model (also a live one, at the end of a run).
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed.checkpoint as dcp
from transformers import AutoTokenizer

from launcher.checkpoints import DEEPSPEED_DIR, best_checkpoint, complete_checkpoints, step_dir
from launcher.checksums import check
from launcher.errors import UserError
from launcher.rundir import OBJECTIVE_FILE, RunDir, read_objective
from launcher.train.dtypes import DTYPES
from launcher.train.methods import Method
from launcher.train.methods.export import export_model, export_trained, save_adapter
from launcher.train.model import build_model


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
    """(model, tokenizer) of a run's checkpoint, consolidated in this one process.

    DCP checkpoints (DDP, FSDP2) reshard on load; DeepSpeed's (step-N/deepspeed/) go through its
    zero_to_fp32 consolidation (the fp32 master weights). LoRA/QLoRA checkpoints hold the adapters only:
    the model is rebuilt from the recipe with the method applied (a peft model) and the adapters loaded.
    """

    from launcher.train.objectives import build_objective

    recipe = run.load_recipe()
    tokenizer = AutoTokenizer.from_pretrained(run.tokenizer)
    task = read_objective(run.path)
    labels = task.labels if task else None
    method = Method(recipe)
    model = build_model(recipe, tokenizer, build_objective(recipe, tokenizer, labels).head_config(), method)
    adapters_only = method.checkpoints_trainable_only
    if (path / DEEPSPEED_DIR).is_dir():
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(path), tag=DEEPSPEED_DIR)
        result = model.load_state_dict(state, strict=not adapters_only)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        if adapters_only and trainable & set(result.missing_keys):
            raise UserError(f"{path}: the checkpoint lacks trained weights such as "
                            f"{sorted(trainable & set(result.missing_keys))[0]}")
        return model, tokenizer
    if adapters_only:  # loaded in place into the live adapter tensors
        state = {"model": {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}}
        _load_here(state, path)
        return model, tokenizer
    state = {"model": model.state_dict()}
    _load_here(state, path)
    model.load_state_dict(state["model"])
    return model, tokenizer


def export_checkpoint(run: RunDir, step: int | None, out: Path | None, dtype: str, best: bool = False,
                      merge_lora: bool = False) -> Path:
    """A Hugging Face directory from a checkpoint; for LoRA/QLoRA runs the peft adapter alone, or with
    `merge_lora` the merged full model (its adapter beside it in adapter/)."""
    adapters = Method(run.load_recipe()).checkpoints_trainable_only
    if merge_lora and not adapters:
        raise UserError(f"--merge-lora: {run.path} trained method.type={run.load_recipe().method.type}, which has no "
                        f"adapter to merge; leave --merge-lora out")
    step, path = pick_checkpoint(run, step, best)
    damaged = check(path)
    if damaged:
        raise UserError(f"{path}: damaged, {damaged}; export another step with --step "
                        f"(llaunch checkpoints {run.path} --verify lists the intact ones)")
    out = out or run.path / "exports" / f"step-{step:06d}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose another directory")
    model, tokenizer = load_checkpoint_model(run, path)
    if not adapters:
        export_model(model.to(DTYPES[dtype]), tokenizer, out)
    elif merge_lora:
        export_trained(model, tokenizer, out, dtype=DTYPES[dtype])
    else:
        save_adapter(model, tokenizer, out)
    task = run.path / OBJECTIVE_FILE
    if task.is_file():
        (out / OBJECTIVE_FILE).write_text(task.read_text())
    return out


def _load_here(state: dict, path: Path) -> None:
    """DCP load in this one process (it warns that it is not distributed: that is the point here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(path), no_dist=True)
