"""Load a recipe: read YAML, merge `extends:` bases, resolve paths, apply overrides, validate."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from launcher.errors import UserError
from launcher.recipe.overrides import apply_override, parse_override
from launcher.recipe.schema import PATH_KEYS, Recipe
from launcher.recipe.yaml_source import KeyPath, read_yaml


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """The validated recipe, or a one-line UserError naming the file:line and key."""
    data, lines = _load_with_bases(Path(path), chain=())
    for text in overrides:
        key, value, delete = parse_override(text)
        if not delete and key in PATH_KEYS:
            value = _resolve_paths(value, Path.cwd())
        apply_override(data, key, value, delete, text)
        lines[key] = f"override '{text}'"
    return validate(data, lines, default_where=str(path))


def validate(data: dict[str, Any], lines: dict[KeyPath, str], default_where: str) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except pydantic.ValidationError as exc:
        # a misspelt key explains the "missing" error it causes: report it first
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        message = _format_error(errors[0], lines, default_where)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(message + more) from None


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in chain + (resolved,))
        raise UserError(f"{path}: extends cycle: {cycle}")
    data, lines = read_yaml(path)
    for key in PATH_KEYS:
        _resolve_key(data, key, path.parent)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data, lines
    if not isinstance(base_name, str):
        raise UserError(f"{lines[('extends',)]}: extends: expected one file name, got {base_name!r}")
    base_path = (path.parent / base_name) if not Path(base_name).is_absolute() else Path(base_name)
    if not base_path.exists():
        raise UserError(f"{lines[('extends',)]}: extends: base recipe {base_path} not found")
    base, base_lines = _load_with_bases(base_path, chain + (resolved,))
    return _deep_merge(base, data), {**base_lines, **lines}


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child values win; sections merge key by key; lists are replaced whole."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve_key(data: dict[str, Any], key: KeyPath, base_dir: Path) -> None:
    node: Any = data
    for part in key[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and key[-1] in node:
        node[key[-1]] = _resolve_paths(node[key[-1]], base_dir)


def _resolve_paths(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and value.startswith(PACKAGE_PREFIX):
        return _package_path(value)
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())
    if isinstance(value, list):
        return [_resolve_paths(item, base_dir) for item in value]
    if isinstance(value, dict) and "path" in value:  # a weighted source: {path, weight}
        return {**value, "path": _resolve_paths(value["path"], base_dir)}
    return value


PACKAGE_PREFIX = "package:"


def _package_path(value: str) -> str:
    """`package:NAME/sub/dir`: a directory shipped inside an installed Python package (a model on PyPI)."""
    import importlib.util

    name, _, sub = value[len(PACKAGE_PREFIX):].partition("/")
    try:
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{value}: no installed Python package {name!r} (pip install --no-deps "
                        f"{name.replace('_', '-')})")
    return str(Path(list(spec.submodule_search_locations)[0]) / sub)


def _format_error(error: dict[str, Any], lines: dict[KeyPath, str], default_where: str) -> str:
    loc = tuple(_printable(str(part)) for part in error["loc"])
    dotted = ".".join(loc) if loc else "recipe"
    where = _nearest_line(loc, lines) or default_where
    if error["type"] == "extra_forbidden":
        valid = _field_names(loc[:-1])
        hint = _did_you_mean(loc[-1], valid)
        suggestion = f"did you mean '{hint}'? " if hint else ""
        return f"{where}: {dotted}: unknown key; {suggestion}valid keys here: {', '.join(valid)}"
    if error["type"] == "missing":
        return f"{where}: {dotted}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("value_error", "assertion_error") and len(loc) <= 1:
        return f"{where}: {message}"
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{where}: {dotted}: {message}{shown}"


def _printable(key: str) -> str:
    """Keys are shown as written, unless they hold characters that would break the one-line message."""
    return key if key.isprintable() else repr(key)


def _did_you_mean(key: str, valid: list[str]) -> str | None:
    """Closest valid key, also matching against the words of snake_case keys (stpes -> max_steps)."""
    candidates = {name: name for name in valid}
    for name in valid:
        for word in name.split("_"):
            candidates.setdefault(word, name)
    hint = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return candidates[hint[0]] if hint else None


def _nearest_line(loc: KeyPath, lines: dict[KeyPath, str]) -> str | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field_names(loc: KeyPath) -> list[str]:
    """The valid keys of the section at `loc` (for 'did you mean')."""
    model: type[BaseModel] | None = Recipe
    for part in loc:
        field = model.model_fields.get(part) if model else None
        model = _model_of(field.annotation) if field else None
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None
