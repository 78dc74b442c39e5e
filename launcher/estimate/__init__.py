"""`llaunch estimate`: memory per device for every engine x method, from the model's config alone (no torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from launcher.errors import UserError
from launcher.estimate.memory import Estimate, Setup, estimate
from launcher.estimate.shapes import ModelShape, model_shape, read_config
from launcher.recipe import ds_config
from launcher.recipe.schema import Recipe

ENGINES = (("ddp", "none"), ("fsdp2", "none"), ("fsdp2", "params"), ("zero1", "none"), ("zero1", "optimizer"),
           ("zero2", "none"), ("zero2", "optimizer"), ("zero3", "none"), ("zero3", "optimizer"),
           ("zero3", "params"))
HEADROOM = 0.9  # of the GPU's memory usable by tensors: the rest is CUDA context, fragmentation, temporaries


@dataclass(frozen=True)
class Row:
    strategy: str
    offload: str
    method: str
    result: Estimate | None
    refused: str = ""
    is_recipe: bool = False


def parse_size(text: str) -> int:
    """'80GiB', '80GB', '81920MiB', '85899345920' -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise UserError(f"--gpu-memory {text!r}: expected a size like 80GiB, 80GB or 24576MiB")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    return int(float(number) * base ** " KMGT".index(unit.upper() or " "))


def rows_for(recipe: Recipe, world_size: int) -> tuple[ModelShape, list[Row]]:
    shape = model_shape(read_config(recipe))
    methods = ["full", "lora", "qlora"] + (["freeze"] if recipe.method.type == "freeze" else [])
    rows = []
    for method in methods:
        for strategy, offload in ENGINES:
            variant, refused = _variant(recipe, strategy, offload, method)
            mine = (strategy, offload, method) == (recipe.parallel.strategy, recipe.parallel.offload,
                                                   recipe.method.type)
            result = None if refused else estimate(shape, _setup(variant, shape, world_size))
            rows.append(Row(strategy, offload, method, result, refused, mine))
    return shape, rows


def estimate_recipe(recipe: Recipe, world_size: int | None = None) -> Estimate:
    """The recipe's own engine and method, per rank."""
    shape = model_shape(read_config(recipe))
    return estimate(shape, _setup(recipe, shape, world_size or recipe.world_size))


def _variant(recipe: Recipe, strategy: str, offload: str, method: str) -> tuple[Recipe | None, str]:
    """The recipe with another engine and method, or the compatibility rule that refuses it."""
    data = recipe.model_dump(mode="json", by_alias=True, exclude_none=True)
    mine = recipe.parallel.strategy == strategy
    data["parallel"] = {**data["parallel"], "strategy": strategy, "offload": offload}
    if not mine:
        data["parallel"].pop("deepspeed_config", None)
    if method != recipe.method.type:
        data["method"] = {"type": method}
        if method == "lora" and recipe.method.type == "qlora":
            data["method"]["lora"] = data_method_lora(recipe)
        if method == "qlora":
            data["method"]["lora"] = data_method_lora(recipe)
            if strategy in ("fsdp2", "zero3"):
                data["method"]["qlora"] = {"quant_storage": recipe.model.dtype}
    try:
        return Recipe.model_validate(data), ""
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError: the rule's own words
        errors = getattr(exc, "errors", None)
        message = errors()[0]["msg"] if callable(errors) else str(exc)
        return None, message.removeprefix("Value error, ")


def data_method_lora(recipe: Recipe) -> dict:
    return recipe.method.lora.model_dump(mode="json") if recipe.method.lora else {}


def _setup(recipe: Recipe, shape: ModelShape, world_size: int) -> Setup:
    m, p = recipe.method, recipe.parallel
    zero = {}
    if p.is_deepspeed:
        zero = ds_config.fill_model_sized(ds_config.resolve(recipe), shape.hidden).get("zero_optimization", {})
    lora = m.lora
    targets = "all-linear" if lora is None else lora.target_modules
    targets = targets if isinstance(targets, str) else tuple(targets)
    return Setup(
        strategy=p.strategy, offload=p.offload, method=m.type, world_size=world_size, dtype=recipe.model.dtype,
        mixed_precision=p.mixed_precision, micro_batch=recipe.train.micro_batch_size, seq_len=recipe.data.seq_len,
        activation_checkpointing=p.activation_checkpointing,
        lora_r=lora.r if lora else 8, lora_targets=targets,
        lora_modules_to_save=tuple(lora.modules_to_save) if lora else (), use_dora=bool(lora and lora.use_dora),
        qlora_bits=m.qlora.bits if m.qlora else 4, double_quant=m.qlora.double_quant if m.qlora else True,
        freeze_top_blocks=(m.freeze.train_top_blocks or 0) if m.freeze else 0,
        freeze_patterns=tuple(m.freeze.train_patterns) if m.freeze else (), zero=zero,
    )


def human(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def report(recipe: Recipe, gpu_memory: int, nodes: int, gpus_per_node: int) -> str:
    world = nodes * gpus_per_node
    shape, rows = rows_for(recipe, world)
    usable = gpu_memory * HEADROOM
    t = recipe.train
    lines = [
        f"model     {shape.model_type}: {shape.numel / 1e9:.3g}B parameters ({shape.numel:,}), {shape.num_layers} "
        f"layers, hidden {shape.hidden}, vocab {shape.vocab}; weights {recipe.model.dtype}, compute "
        f"{recipe.parallel.mixed_precision}",
        f"batch     micro {t.micro_batch_size} x seq_len {recipe.data.seq_len} per device, activation checkpointing "
        f"{'on' if recipe.parallel.activation_checkpointing else 'off'}",
        f"devices   {nodes} node(s) x {gpus_per_node} = {world}, {human(gpu_memory)} each "
        f"(fits: total <= {HEADROOM:.0%} of it)",
        "",
        "| engine | offload | method | params | grads | optimizer | activations | buffers | total/GPU | CPU/GPU | fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = f"**{row.strategy}**" if row.is_recipe else row.strategy
        if row.result is None:
            reason = row.refused.split("; ")[0]
            lines.append(f"| {name} | {row.offload} | {row.method} | refused: {reason} |||||||")
            continue
        e = row.result
        fits = "yes" if e.total <= usable else "no"
        lines.append(f"| {name} | {row.offload} | {row.method} | {human(e.params)} | {human(e.grads)} | "
                     f"{human(e.optimizer)} | {human(e.activations)} | {human(e.buffers)} | {human(e.total)} | "
                     f"{human(e.cpu)} | {fits} |")
    lines.append("")
    lines.append("bold: the recipe's own engine and method. Activations are an estimate; params, grads and optimizer "
                 "are what the engines allocate.")
    return "\n".join(lines)
