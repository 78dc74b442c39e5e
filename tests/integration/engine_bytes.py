"""Run under torchrun: build each engine on the tiny model, take two steps, count the bytes it really holds.

Writes one JSON line per case (rank 0 and 1 both) to the file named by argv[1]. Used by test_estimate_real.py:
    torchrun --nproc-per-node 2 tests/integration/engine_bytes.py OUT.jsonl RECIPE [case=override,... ...]

Counting is by unique tensor storage (views of one buffer count once):
  params     the module's parameters as this rank holds them (FSDP2 local shards, ZeRO-3 partitions)
  optimizer  the optimizer's state tensors and the tensors it steps when they are not the module's own
             parameters (DeepSpeed's fp32 master partitions)
  buffers    DeepSpeed's reduce buckets and offload staging buffers
  grads      every other tensor storage alive after backward that was not alive before the engine was built
             (gradients, gradient partitions, DeepSpeed's fp32 gradients; also the model's few small buffers)
"""

from __future__ import annotations

import gc
import json
import os
import sys

import torch
import torch.distributed as dist


def _storages(tensors) -> dict[int, int]:
    out = {}
    for t in tensors:
        if hasattr(t, "to_local"):
            t = t.to_local()
        if t is None or t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        if storage.nbytes():
            out[storage.data_ptr()] = storage.nbytes()
    return out


def _live_tensors():
    gc.collect()
    found = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor):
                found.append(obj)
        except ReferenceError:
            continue
    return found


def _param_tensors(module):
    for p in module.parameters():
        yield p.ds_tensor if hasattr(p, "ds_tensor") else p
        state = getattr(p, "quant_state", None)  # 4-bit quantization constants belong to the weights
        while state is not None:
            yield from (t for t in (state.absmax, state.code) if torch.is_tensor(t))
            state = getattr(state, "state2", None)


def _optimizer_tensors(optimizer):
    for state in optimizer.state.values():
        yield from (v for v in state.values() if torch.is_tensor(v) and v.dim() > 0)
    for group in optimizer.param_groups:
        yield from group["params"]


def measure(recipe, tokenizer, dist_info) -> dict[str, int]:
    from launcher.train.engines import build_engine
    from launcher.train.methods import Method
    from launcher.train.model import build_model

    batch = torch.randint(0, len(tokenizer), (recipe.train.micro_batch_size, recipe.data.seq_len))
    baseline = set(_storages(_live_tensors()))
    method = Method(recipe)
    engine = build_engine(recipe, build_model(recipe, tokenizer, method=method), method, dist_info)
    inner = getattr(engine.optimizer, "optimizer", engine.optimizer)  # DeepSpeed wraps the torch optimizer
    for step in range(2):  # the first step creates the optimizer state and any lazily made buffers
        if method.begin_step(step):
            engine.trainable_changed()
        engine.model.train()
        with engine.accumulating(True):
            engine.backward(engine.model(input_ids=batch, labels=batch).loss)
        if step == 1:  # gradients hang off their parameters in C++, where gc does not see them
            held = [p.grad for p in engine.unwrapped().parameters()] + [p.grad for p in _optimizer_tensors(inner)]
            live = _storages(_live_tensors() + [g for g in held if g is not None])
        engine.step()
    params = _storages(_param_tensors(engine.unwrapped()))
    optimizer = {k: v for k, v in _storages(_optimizer_tensors(inner)).items() if k not in params}
    buffers = _storages(_comm_buffers(engine.optimizer))
    grads = {k: v for k, v in live.items()
             if k not in baseline and k not in params and k not in optimizer and k not in buffers}
    return {"params": sum(params.values()), "optimizer": sum(optimizer.values()), "grads": sum(grads.values()),
            "buffers": sum(buffers.values())}


def _comm_buffers(optimizer):
    """DeepSpeed's reduce buckets and offload staging buffers: communication scratch, not gradients."""
    for bucket in getattr(optimizer, "ipg_buckets", {}).values():
        buffer = bucket.buffer
        yield from (buffer if isinstance(buffer, list) else [buffer])
    for name in ("temp_grad_buffer_for_cpu_offload", "temp_grad_buffer_for_gpu_offload"):
        if torch.is_tensor(getattr(optimizer, name, None)):
            yield getattr(optimizer, name)


def main(out: str, recipe_path: str, cases: list[str]) -> None:
    from transformers import AutoTokenizer

    from launcher.recipe import load_recipe
    from launcher.train.distributed import setup

    d = setup("cpu")
    tokenizer = AutoTokenizer.from_pretrained(os.environ["LLAUNCH_TOKENIZER"])
    for case in cases:
        name, _, overrides = case.partition("=")
        recipe = load_recipe(recipe_path, [o for o in overrides.split(";") if o])
        result = {"case": name, "rank": d.rank, **measure(recipe, tokenizer, d)}
        with open(out, "a") as handle:
            handle.write(json.dumps(result) + "\n")
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
