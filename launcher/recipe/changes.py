"""What changed between two recipes, and which changes a resume may make without breaking exactness."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from launcher.recipe.schema import Recipe

# Keys whose change keeps a resumed run exact (or only changes where it runs and what it reports).
SAFE_PREFIXES = (
    "resources.", "slurm.", "logging.", "output.", "description",
    "train.log_every", "eval.every", "eval.max_batches", "eval.at_start",
    "checkpoint.every", "checkpoint.keep_last", "checkpoint.async", "checkpoint.at_end",
    "train.grad_accum",  # safe as long as the global batch stays the same (checked apart)
)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def recipe_changes(old: Recipe, new: Recipe) -> list[tuple[str, Any, Any]]:
    before = _flatten(old.model_dump(mode="json", by_alias=True))
    after = _flatten(new.model_dump(mode="json", by_alias=True))
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)]


def unsafe_changes(old: Recipe, new: Recipe) -> list[str]:
    """Human lines for the changes that would make the resumed run differ from the one it continues."""
    problems = []
    for key, was, now in recipe_changes(old, new):
        if key.startswith(SAFE_PREFIXES):
            continue
        if key == "train.max_steps" and now > was:
            continue
        problems.append(f"{key}: {was!r} -> {now!r}")
    if old.global_batch_size != new.global_batch_size:
        problems.append(f"global batch: {old.global_batch_size} -> {new.global_batch_size} sequences per step "
                        "(set train.global_batch_size to keep it when changing the world size)")
    return problems


def training_hash(recipe: Recipe) -> str:
    """Hash of everything that decides the training math (the keys a resume must not change)."""
    flat = _flatten(recipe.model_dump(mode="json", by_alias=True))
    kept = {k: v for k, v in flat.items() if not k.startswith(SAFE_PREFIXES) and k != "train.max_steps"}
    kept["global_batch_size"] = recipe.global_batch_size
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]
