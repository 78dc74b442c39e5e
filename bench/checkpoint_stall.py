"""Checkpoint stall: how much longer a stretch of training takes when it includes one save, sync vs
async (checkpoint.async's thread writer, and DCP's process-based writer beside it), on a model whose save
takes several seconds; save/load bandwidth against a plain file copy of the same bytes; and the share of
a save spent on the checksums (xxh3-64) of its files (done right after the write, target <= 5%). One process, the real
DDP engine and Checkpointer.

    python bench/checkpoint_stall.py [--rounds 3] [--hidden 1024] [--layers 8] [--steps 16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.distributed.checkpoint as dcp  # noqa: E402
from torch.distributed.checkpoint.state_dict_saver import AsyncCheckpointerType  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from common import save, table  # noqa: E402
from launcher.recipe import load_recipe  # noqa: E402
from launcher.checksums import own_files  # noqa: E402
from launcher.train.checkpoint import Checkpointer, TrainerState  # noqa: E402
from launcher.train.distributed import Dist  # noqa: E402
from launcher.train.engines.ddp import DDPEngine  # noqa: E402
from launcher.train.methods import Method  # noqa: E402

SAVE_AT = 2


class ProcessWriterEngine(DDPEngine):
    """The same engine; with `process_writer` set, async saves go to DCP's process-based writer (a process of
    its own: no GIL shared with training) instead of the thread that checkpoint.async uses."""

    process_writer = False

    def async_save(self, path: Path, process_group):
        if not self.process_writer:
            return super().async_save(path, process_group)
        return dcp.async_save(self.sharded_state(), checkpoint_id=str(path), process_group=process_group,
                              async_checkpointer_type=AsyncCheckpointerType.PROCESS)

    @contextlib.contextmanager
    def with_process_writer(self):
        self.process_writer = True
        try:
            yield
        finally:
            self.process_writer = False


def train_stretch(engine, batch, checkpointer: Checkpointer | None, steps: int) -> float:
    started = time.perf_counter()
    for step in range(1, steps + 1):
        engine.model(input_ids=batch, labels=batch).loss.backward()
        engine.step()
        if checkpointer:
            checkpointer.poll()
            if step == SAVE_AT:
                checkpointer.save(TrainerState(step=step))
    if checkpointer:
        checkpointer.wait()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    # long enough for an async write to finish behind training, as between a real run's checkpoints: a
    # shorter stretch would end waiting for the write and count that wait as stall
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")  # where the process writer's own process group meets
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29611", rank=0, world_size=1)
    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "quickstart.yaml",
                         ["resources.procs_per_node=1", "~train.global_batch_size", "train.max_steps=1000"])
    config = LlamaConfig(hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                         num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64, vocab_size=32000)
    torch.manual_seed(0)
    engine = ProcessWriterEngine(LlamaForCausalLM(config), Method(recipe), recipe, Dist(0, 1, 0, torch.device("cpu")))
    batch = torch.randint(0, 32000, (1, 128))
    params = sum(p.numel() for p in engine.unwrapped().parameters())
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        train_stretch(engine, batch, None, 2)  # warm-up: optimizer state exists from here on
        sync_ckpt = Checkpointer(engine, root / "sync", 1, False, Dist(0, 1, 0, torch.device("cpu")))
        async_ckpt = Checkpointer(engine, root / "async", 1, True, Dist(0, 1, 0, torch.device("cpu")))
        process_ckpt = Checkpointer(engine, root / "process", 1, True, Dist(0, 1, 0, torch.device("cpu")))
        with engine.with_process_writer():
            train_stretch(engine, batch, process_ckpt, SAVE_AT)  # starts the writer process once, as a run would
        samples = {"no save": [], "sync save": [], "async save": [], "async save (process writer)": []}
        for _ in range(args.rounds):
            samples["no save"].append(train_stretch(engine, batch, None, args.steps))
            samples["sync save"].append(train_stretch(engine, batch, sync_ckpt, args.steps))
            samples["async save"].append(train_stretch(engine, batch, async_ckpt, args.steps))
            with engine.with_process_writer():
                samples["async save (process writer)"].append(train_stretch(engine, batch, process_ckpt, args.steps))
            print({k: round(v[-1], 2) for k, v in samples.items()}, flush=True)
        saved = root / "sync" / f"step-{SAVE_AT:06d}"
        size = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
        started = time.perf_counter()
        sync_ckpt.save(TrainerState(step=99))
        save_seconds = time.perf_counter() - started  # the checksum pass included
        started = time.perf_counter()
        own_files(root / "sync" / "step-000099", 0)  # that pass again, on the pages the save left in memory
        hash_seconds = time.perf_counter() - started
        started = time.perf_counter()
        engine.load(root / "sync" / "step-000099")
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(root / "sync" / "step-000099"), str(root / "copy")], check=True)
        os.sync()
        copy_seconds = time.perf_counter() - started
        shutil.rmtree(root / "copy")
    median = {k: statistics.median(v) for k, v in samples.items()}
    stall = {k: median[k] - median["no save"] for k in samples if k != "no save"}
    gb = size / 1e9
    print(f"model {params / 1e6:.0f}M params; checkpoint {gb:.2f} GB (model + AdamW states)")
    print(table([[k, f"{v:.2f} s"] for k, v in stall.items()], ["save", "training stall per checkpoint"]))
    print(f"async stall / sync stall = {stall['async save'] / stall['sync save']:.2f} (target < 0.20)")
    print(table([["DCP save (sync)", f"{gb / save_seconds:.2f} GB/s"], ["DCP load", f"{gb / load_seconds:.2f} GB/s"],
                 ["cp -r of the same files", f"{gb / copy_seconds:.2f} GB/s"]], ["operation", "bandwidth"]))
    print(f"checksums of the checkpoint's files: {hash_seconds:.2f} s = {hash_seconds / save_seconds:.1%} of the save "
          f"({gb / hash_seconds:.2f} GB/s; target <= 5%)")
    save("checkpoint_stall", {"params": params, "checkpoint_bytes": size, "median_stretch_seconds": median,
                              "stall_seconds": stall, "save_gbps": gb / save_seconds, "load_gbps": gb / load_seconds,
                              "copy_gbps": gb / copy_seconds, "hash_seconds": hash_seconds,
                              "hash_share_of_save": hash_seconds / save_seconds, "samples": samples})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
