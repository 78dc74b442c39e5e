"""Checkpoints: sharded model/optimizer state (through the engine) + trainer state + per-rank RNG.

A checkpoint counts only once every rank has written and rank 0 has put the COMPLETE marker in
place by atomic rename. Resume takes the newest complete one; incomplete ones are removed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from launcher.checkpoints import MARKER, complete_checkpoints, incomplete_checkpoints, step_dir
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine

STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    step: int = 0
    consumed_samples: int = 0
    world_size: int = 1
    global_batch_size: int = 0
    recipe_hash: str = ""


def save(engine: Engine, state: TrainerState, root: Path, keep_last: int, d: Dist) -> Path:
    path = step_dir(root, state.step)
    if d.is_main:
        root.mkdir(parents=True, exist_ok=True)
        if path.exists():  # a leftover from a run killed while saving this very step
            shutil.rmtree(path)
    dist.barrier()
    engine.save(path)
    torch.save(_rng_state(), path / f"rng-rank{d.rank}.pt")
    dist.barrier()
    if d.is_main:
        payload = {"trainer": asdict(state), "scheduler": engine.scheduler.state_dict()}
        (path / STATE_FILE).write_text(json.dumps(payload, indent=1))
        tmp = path / f".{MARKER}.tmp"
        tmp.write_text(f"step {state.step}\n")
        os.replace(tmp, path / MARKER)
        _rotate(root, keep_last)
    return path


def load(engine: Engine, path: Path, d: Dist) -> TrainerState:
    engine.load(path)
    payload = json.loads((path / STATE_FILE).read_text())
    engine.scheduler.load_state_dict(payload["scheduler"])
    rng_file = path / f"rng-rank{d.rank}.pt"
    if rng_file.exists():
        _set_rng_state(torch.load(rng_file, weights_only=True))
    return TrainerState(**payload["trainer"])


def clean_incomplete(root: Path) -> None:
    for path in incomplete_checkpoints(root):
        shutil.rmtree(path, ignore_errors=True)


def _rotate(root: Path, keep_last: int) -> None:
    complete = complete_checkpoints(root)
    for _, path in complete[:-keep_last]:
        (path / MARKER).unlink()  # unmark first: a half-deleted checkpoint is never taken as complete
        shutil.rmtree(path, ignore_errors=True)


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
