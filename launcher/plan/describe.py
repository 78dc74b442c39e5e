"""Human summary of a resolved recipe and its plan (what `llaunch plan` prints)."""

from __future__ import annotations

import shlex
from importlib.util import find_spec

from launcher.plan.launch_plan import LaunchPlan
from launcher.recipe.packing import packing_default
from launcher.recipe.schema import Recipe, TrainSpec

ADAM_EPS = 1e-8  # torch.optim.AdamW's default: no engine passes eps


def describe(source: str, recipe: Recipe, plan: LaunchPlan) -> str:
    t, r = recipe.train, recipe.resources
    if recipe.model.path:
        model = f"{recipe.model.path} ({recipe.model.dtype})"
    else:
        settings = {k: v for k, v in recipe.model.config.items() if k != "type"}
        model = f"{recipe.model.config['type']} from config " + " ".join(f"{k}={v}" for k, v in settings.items())
    lines = [
        f"recipe    {source}  (name {recipe.name})",
        f"objective {recipe.objective}, method {recipe.method.type}, engine {recipe.parallel.strategy}",
        f"model     {model}",
        f"data      {len(recipe.data.train)} train file(s), {len(recipe.data.eval)} eval file(s), "
        f"seq_len {recipe.data.seq_len}",
        f"batch     micro {t.micro_batch_size} x accum {recipe.grad_accum} x world {recipe.world_size} = "
        f"{_per_step(recipe)} per step, {t.max_steps} steps",
        f"optimizer {_optimizer(t)}",
        *([f"attention {_packed_attention(recipe)}"] if recipe.objective == "sft" and recipe.data.packing else []),
        *_padding_fallback(recipe),
        f"launch    {plan.launcher}: {plan.nodes} node(s) x {plan.procs_per_node} process(es), device {r.device}",
        "commands:",
    ]
    if plan.launcher == "slurm":
        lines += [f"  [{command.node}] {command.shell()}   (llaunch submit runs it)" for command in plan.commands]
    else:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items()))
        lines += [f"  [{command.node}] {env} {command.shell()}" for command in plan.commands]
    for name, text in sorted(plan.files.items()):
        if name != "launch.sh":
            lines += [f"{name}:", *(f"  {line}" for line in text.splitlines())]
    return "\n".join(lines)


def _per_step(recipe: Recipe) -> str:
    """What one step holds: exact for clm/mlm blocks, a bound where examples are only as long as they are."""
    n, seq_len = recipe.global_batch_size, recipe.data.seq_len
    if recipe.objective in ("clm", "mlm"):
        return f"{n} sequences ({n * seq_len:,} tokens)"
    if recipe.data.packing:
        rows = recipe.grad_accum * recipe.world_size
        return (f"{n} examples in {rows} packed row(s) of {recipe.train.micro_batch_size} "
                f"(up to {n * seq_len:,} tokens, no padding)")
    bound = f"up to {n * seq_len:,} tokens"
    if recipe.objective == "seq2seq":
        bound = f"up to {n * seq_len:,} source and {n * (recipe.data.target_len or seq_len):,} target tokens"
    return f"{n} sequences ({bound}, padded to the longest in each micro batch)"


def _optimizer(t: TrainSpec) -> str:
    """Every setting of the AdamW step, defaults included (betas differ from transformers' Trainer)."""
    clip = f"clip grad norm {t.max_grad_norm:g}" if t.max_grad_norm is not None else "no clipping"
    decay = f"weight decay {t.weight_decay:g}" + (" (none on biases and norms)" if t.weight_decay else "")
    return (f"AdamW lr {t.lr:g}, betas ({t.betas[0]:g}, {t.betas[1]:g}), eps {ADAM_EPS:g}, {decay}, "
            f"warmup {t.warmup_steps} steps, {t.schedule} schedule, {clip}")


def _padding_fallback(recipe: Recipe) -> list[str]:
    """One line where sft pads because packing's default is off for this model (packing_default says why)."""
    if recipe.objective != "sft" or recipe.data.packing:
        return []
    packs, why = packing_default(recipe.objective, recipe.model)
    return [] if packs else [f"packing   off: sft falls back to padding here ({why})"]


def _packed_attention(recipe: Recipe) -> str:
    """The kernel that keeps packed examples apart (launcher/train/packed_attention.py picks it per call)."""
    cpu = "one causal SDPA per example"
    if recipe.resources.device == "cpu":
        return f"packed rows: {cpu} (FlexAttention has no backward on CPU)"
    half = recipe.parallel.mixed_precision != "fp32" or recipe.model.dtype in ("bfloat16", "float16")
    if half and find_spec("flash_attn"):
        gpu = "flash-attn varlen"
    else:
        gpu = "FlexAttention, document mask " + ("(flash-attn not installed here)" if half else
                                                  "(fp32 compute; flash-attn needs bf16/fp16)")
    return f"packed rows: {gpu} on CUDA" + (f"; {cpu} on CPU" if recipe.resources.device == "auto" else "")
