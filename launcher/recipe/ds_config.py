"""The DeepSpeed config a ZeRO run uses: the JSON file with the recipe's own values filled in (no torch).

The recipe owns the batch (micro batch, gradient accumulation, global batch), clipping, precision,
ZeRO stage, offload and the optimizer. A config file may leave those out (or say "auto"); one
that sets them to something else is an error naming both values.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DS_CONFIGS = ROOT / "ds_configs"


def default_config_path(strategy: str, offload: str) -> Path:
    """ds_configs/<strategy>[_offload].json: zero2_offload offloads the optimizer, zero3_offload params too."""
    name = {("zero2", "optimizer"): "zero2_offload", ("zero3", "params"): "zero3_offload"}.get(
        (strategy, offload), strategy
    )
    return DS_CONFIGS / f"{name}.json"


def config_path(recipe) -> Path:
    p = recipe.parallel
    return Path(p.deepspeed_config) if p.deepspeed_config else default_config_path(p.strategy, p.offload)


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"parallel.deepspeed_config: file {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"parallel.deepspeed_config: {path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"parallel.deepspeed_config: cannot read {path} ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ValueError(f"parallel.deepspeed_config: {path} must hold a JSON object")
    return data


def recipe_values(recipe) -> dict[tuple[str, ...], tuple[Any, str]]:
    """Config key path -> (value, the recipe key it comes from)."""
    p, t = recipe.parallel, recipe.train
    offload_opt = p.offload in ("optimizer", "params")
    return {
        ("train_micro_batch_size_per_gpu",): (t.micro_batch_size, "train.micro_batch_size"),
        ("gradient_accumulation_steps",): (recipe.grad_accum, "train.grad_accum"),
        ("train_batch_size",): (recipe.global_batch_size, "train.global_batch_size"),
        ("gradient_clipping",): (t.max_grad_norm or 0.0, "train.max_grad_norm"),
        ("bf16", "enabled"): (p.mixed_precision == "bf16", "parallel.mixed_precision"),
        ("fp16", "enabled"): (p.mixed_precision == "fp16", "parallel.mixed_precision"),
        ("zero_optimization", "stage"): (p.zero_stage, "parallel.strategy"),
        ("zero_optimization", "offload_optimizer", "device"): ("cpu" if offload_opt else "none", "parallel.offload"),
        ("zero_optimization", "offload_param", "device"): (
            "cpu" if p.offload == "params" else "none", "parallel.offload"),
    }


def resolve(recipe) -> dict[str, Any]:
    """The config file merged with the recipe's values; ValueError when the file contradicts the recipe."""
    path = config_path(recipe)
    config = copy.deepcopy(read_config(path))
    for section in ("optimizer", "scheduler"):
        if section in config:
            raise ValueError(
                f"parallel.deepspeed_config: {path} has a '{section}' section, but the recipe owns the "
                f"optimizer and LR schedule (train.lr, train.betas, train.weight_decay, train.schedule); remove it"
            )
    for keys, (wanted, owner) in recipe_values(recipe).items():
        found = _get(config, keys)
        if found is None or found == "auto" or _same(found, wanted):
            if not (wanted == "none" and found is None):
                _set(config, keys, wanted)
            continue
        raise ValueError(
            f"parallel.deepspeed_config: {path} sets {'.'.join(keys)}={json.dumps(found)} but the recipe's "
            f"{owner} gives {json.dumps(wanted)}; remove the key from the config (the recipe fills it in) or make them agree"
        )
    config.setdefault("steps_per_print", 10**9)
    unknown = [key for key in _auto_keys(config) if key not in MODEL_SIZED]
    if unknown:
        raise ValueError(f"parallel.deepspeed_config: {path} sets {unknown[0]}=\"auto\", which llaunch cannot fill in; "
                         f"give a number (\"auto\" works for the recipe's keys and {', '.join(MODEL_SIZED)})")
    return config


# "auto" values sized from the model's hidden size h, as the transformers integration does
MODEL_SIZED = {
    "zero_optimization.reduce_bucket_size": lambda h: h * h,
    "zero_optimization.allgather_bucket_size": lambda h: h * h,
    "zero_optimization.stage3_prefetch_bucket_size": lambda h: int(0.9 * h * h),
    "zero_optimization.stage3_param_persistence_threshold": lambda h: 10 * h,
}


def fill_model_sized(config: dict[str, Any], hidden_size: int) -> dict[str, Any]:
    """Replace the "auto" bucket sizes and thresholds with values sized from the model."""
    config = copy.deepcopy(config)
    for key in _auto_keys(config):
        _set(config, tuple(key.split(".")), MODEL_SIZED[key](hidden_size))
    return config


def _auto_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _auto_keys(value, f"{prefix}{key}.")]
    return [prefix[:-1]] if node == "auto" else []


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(found, bool):
        return found is wanted
    if isinstance(wanted, (int, float)) and isinstance(found, (int, float)):
        return float(found) == float(wanted)
    return found == wanted


def _get(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(config: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
