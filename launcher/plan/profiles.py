"""Cluster profiles: the site's SLURM defaults (partition, account, GPUs, modules, container) in one file.

`slurm.profile: NAME` reads slurm/profiles/NAME.yaml (in the current directory, else in llaunch's own
checkout) or a .yaml path. A profile has the keys of the recipe's `slurm:` section; the recipe's own
values win, `env` is merged key by key, lists are replaced whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import yaml

from launcher.errors import UserError
from launcher.recipe.schema import SlurmSpec

DEFAULTS: dict[str, Any] = {"signal_lead": 120, "max_requeues": 3, "prepare_tasks": 8}
PROJECT_PROFILES = Path(__file__).resolve().parents[2] / "slurm" / "profiles"


def profile_dirs() -> list[Path]:
    local = Path.cwd() / "slurm" / "profiles"
    return [local] if local.resolve() == PROJECT_PROFILES else [local, PROJECT_PROFILES]


def find_profile(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"slurm.profile: profile file {name} not found")
        return path
    for folder in profile_dirs():
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for folder in profile_dirs() if folder.is_dir() for p in folder.glob("*.yaml")})
    raise UserError(f"slurm.profile: no profile {name!r} in {' or '.join(map(str, profile_dirs()))}; "
                    f"known profiles: {', '.join(known) or 'none'}")


def read_profile(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a cluster profile is a mapping of slurm keys (partition:, account:, ...)")
    if "profile" in data:
        raise UserError(f"{path}: profile: a profile cannot name another profile")
    return data


def resolve_slurm(spec: SlurmSpec) -> SlurmSpec:
    """The recipe's slurm section over its profile over llaunch's defaults, validated; `profile` kept."""
    profile: dict[str, Any] = {}
    where = "recipe"
    if spec.profile:
        path = find_profile(spec.profile)
        profile, where = read_profile(path), str(path)
    mine = {k: v for k, v in spec.model_dump(exclude={"profile"}).items() if v is not None and v != {}}
    env = profile.get("env", {})
    merged = {**DEFAULTS, **profile, **mine, "profile": spec.profile,
              "env": {**env, **spec.env} if isinstance(env, dict) else env}
    try:
        return SlurmSpec.model_validate(merged)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            valid = ", ".join(name for name in SlurmSpec.model_fields if name != "profile")
            raise UserError(f"{where}: {key}: unknown key; valid keys: {valid}") from None
        raise UserError(f"{where}: slurm.{key}: {error['msg'].removeprefix('Value error, ')}") from None
