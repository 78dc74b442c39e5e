"""DeepSpeed ZeRO stage 1/2/3 (+ CPU offload): DeepSpeed's own engine, optimizer partitioning and checkpoints.

The config is ds_configs/<strategy>[_offload].json (or parallel.deepspeed_config) with the recipe's
batch, clipping, precision, stage and offload filled in. The optimizer is the recipe's AdamW, built here
and handed to DeepSpeed. Gradient accumulation is the caller's: backward() per micro batch, step() once.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from transformers import PreTrainedModel

from launcher.checkpoints import DEEPSPEED_DIR
from launcher.errors import UserError
from launcher.recipe import ds_config
from launcher.recipe.schema import Recipe
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine
from launcher.train.methods import Method
from launcher.train.optim import build_scheduler, param_groups

UNIVERSAL_DIR = f"{DEEPSPEED_DIR}_universal"  # step-NNNNNN/deepspeed_universal/: converted for another world size

class DeepSpeedEngine(Engine):
    """DeepSpeed writes its own checkpoint files, in line (an async save is a save in line)."""

    def __init__(self, model: PreTrainedModel, method: Method, recipe: Recipe, dist: Dist):
        import deepspeed

        # DeepSpeed's own collectives call a torch API that warns on every use; nothing for a user to act on
        warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.*deprecated", category=FutureWarning)
        config = ds_config.fill_model_sized(ds_config.resolve(recipe), model.config.hidden_size)
        config["managed_gradient_accumulation"] = False  # step() is the accumulation boundary
        offload = recipe.parallel.offload != "none"
        optimizer = _optimizer(method.optimizer_parameters(model), recipe, offload and dist.device.type == "cuda")
        if offload and dist.device.type != "cuda":
            config["zero_force_ds_cpu_optimizer"] = False  # torch AdamW on CPU: same math, nothing to compile
        scheduler = build_scheduler(optimizer, recipe.train)
        self._ds, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config, dist_init_required=False,
        )
        self.model = self._ds
        self._dist = dist
        self._stage = recipe.parallel.zero_stage
        self.gathers_weights_in_forward = self._stage == 3
        self._trainable_only = method.checkpoints_trainable_only
        self._mixed = recipe.parallel.mixed_precision != "fp32"

    def accumulating(self, last_micro_batch: bool):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self._ds.backward(loss, scale_wrt_gas=False)  # the loop already divides by grad_accum

    def step(self) -> float:
        self._ds.step()  # clip, optimizer step, LR scheduler step, zero grads
        norm = self._ds.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def save(self, path: Path) -> None:
        # universal_checkpoint_info lets `ds_to_universal` convert a ZeRO-2 checkpoint for another world size
        self._ds.save_checkpoint(str(path), tag=DEEPSPEED_DIR, client_state={"universal_checkpoint_info": {}},
                                 save_latest=False, exclude_frozen_parameters=self._trainable_only)

    def load(self, path: Path) -> None:
        saved = len(list((path / DEEPSPEED_DIR).glob("*zero_pp_rank_*_optim_states.pt")))  # one file per rank
        tag = DEEPSPEED_DIR
        if saved and saved != self._ds.world_size:
            tag = self._universal(path, saved)
        loaded, _ = self._ds.load_checkpoint(str(path), tag=tag, load_module_strict=not self._trainable_only,
                                             load_optimizer_states=True, load_lr_scheduler_states=True)
        if loaded is None:
            raise UserError(f"{path}: no DeepSpeed checkpoint in {path / tag}")

    def _universal(self, path: Path, saved: int) -> str:
        """A checkpoint from another world size: DeepSpeed's universal format, converted once by rank 0 with
        DeepSpeed's own ds_to_universal, then loaded by every rank with its load_universal mode."""
        import shutil
        import subprocess
        import sys

        import torch.distributed as dist

        if self._trainable_only:
            raise UserError(f"{path}: a LoRA checkpoint of DeepSpeed written by {saved} ranks cannot be resumed on "
                            f"{self._ds.world_size}; resume with {saved} processes")
        out = path / UNIVERSAL_DIR
        failure = None
        if self._dist.is_main and not out.is_dir():
            tmp = path / f".{UNIVERSAL_DIR}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            done = subprocess.run([sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder",
                                   str(path / DEEPSPEED_DIR), "--output_folder", str(tmp), "--num_extract_workers", "1",
                                   "--num_merge_workers", "1"], capture_output=True, text=True)
            (path / "latest_universal").unlink(missing_ok=True)  # ds_to_universal's pointer: we pass the tag
            if done.returncode == 0:
                tmp.rename(out)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                failure = (done.stderr.strip().splitlines() or ["no output"])[-1]
        failed = torch.tensor([1 if failure else 0], device=self._dist.device)
        dist.all_reduce(failed)  # every rank learns whether the conversion worked
        if failed.item():
            raise UserError(f"{path}: converting the {saved}-rank DeepSpeed checkpoint for {self._ds.world_size} ranks "
                            f"(ds_to_universal) failed: {failure or 'see rank 0'}")
        self._ds._config.load_universal_checkpoint = True  # DeepSpeed reads the mode at load time; no public setter
        return UNIVERSAL_DIR

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        module = self._ds.module
        if self._stage == 3:
            state = self._ds._zero3_consolidated_16bit_state_dict()  # collective, one layer at a time
        else:
            state = module.state_dict()
        if self._mixed:  # the module holds bf16/fp16 copies: export the fp32 master weights instead
            from deepspeed.utils import safe_get_full_fp32_param

            for name, param in module.named_parameters(remove_duplicate=False):
                if param.requires_grad:
                    full = safe_get_full_fp32_param(param)  # collective under ZeRO-3
                    if state is not None and full is not None:
                        state[name] = full.detach().cpu()
        return state

    def unwrapped(self) -> PreTrainedModel:
        return self._ds.module


def _optimizer(params: list[torch.nn.Parameter], recipe: Recipe, cpu_adam: bool) -> torch.optim.Optimizer:
    """The recipe's AdamW (no decay on biases and norms); DeepSpeed's compiled CPU Adam when a GPU run offloads it."""
    t = recipe.train
    groups = [g for g in param_groups(params, t) if g["params"]]  # ZeRO cannot flatten empty groups
    if cpu_adam:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, lr=t.lr, betas=t.betas, adamw_mode=True)
    return torch.optim.AdamW(groups, lr=t.lr, betas=t.betas, fused=True)
