"""Human summary of a resolved recipe and its plan (what `llaunch plan` prints)."""

from __future__ import annotations

import shlex

from launcher.plan.launch_plan import LaunchPlan
from launcher.recipe.schema import Recipe


def describe(source: str, recipe: Recipe, plan: LaunchPlan) -> str:
    t, r = recipe.train, recipe.resources
    if recipe.model.path:
        model = f"{recipe.model.path} ({recipe.model.dtype})"
    else:
        settings = {k: v for k, v in recipe.model.config.items() if k != "type"}
        model = f"{recipe.model.config['type']} from config " + " ".join(f"{k}={v}" for k, v in settings.items())
    tokens = recipe.global_batch_size * recipe.data.seq_len
    lines = [
        f"recipe    {source}  (name {recipe.name})",
        f"objective {recipe.objective}, method {recipe.method.type}, engine {recipe.parallel.strategy}",
        f"model     {model}",
        f"data      {len(recipe.data.train)} train file(s), {len(recipe.data.eval)} eval file(s), "
        f"seq_len {recipe.data.seq_len}",
        f"batch     micro {t.micro_batch_size} x accum {recipe.grad_accum} x world {recipe.world_size} = "
        f"{recipe.global_batch_size} sequences ({tokens:,} tokens) per step, {t.max_steps} steps",
        f"optimizer AdamW lr {t.lr:g}, wd {t.weight_decay:g}, warmup {t.warmup_steps}, {t.schedule} decay, "
        f"clip {t.max_grad_norm}",
        f"launch    {plan.launcher}: {plan.nodes} node(s) x {plan.procs_per_node} process(es), device {r.device}",
        "commands:",
    ]
    if plan.launcher == "slurm":
        lines.append(f"  [{plan.commands[0].node}] {plan.commands[0].shell()}   (llaunch submit runs it)")
    else:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.env.items()))
        lines += [f"  [{command.node}] {env} {command.shell()}" for command in plan.commands]
    for name, text in sorted(plan.files.items()):
        if name != "launch.sh":
            lines += [f"{name}:", *(f"  {line}" for line in text.splitlines())]
    return "\n".join(lines)
