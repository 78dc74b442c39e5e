"""Command-line overrides: `key.sub=value` (typed through YAML) and `~key.sub` (delete)."""

from __future__ import annotations

from typing import Any

import yaml

from launcher.errors import UserError

KeyPath = tuple[str, ...]


def parse_override(text: str) -> tuple[KeyPath, Any, bool]:
    """Return (key path, value, delete?) for one override string."""
    if text.startswith("~"):
        return _key_path(text[1:], text), None, True
    key, sep, raw = text.partition("=")
    if not sep:
        raise UserError(f"override '{text}': expected key.sub=value (or ~key.sub to delete)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return _key_path(key, text), value, False


def _key_path(key: str, text: str) -> KeyPath:
    parts = tuple(key.strip().split("."))
    if not all(parts):
        raise UserError(f"override '{text}': empty key segment in '{key}'")
    return parts


def apply_override(data: dict[str, Any], path: KeyPath, value: Any, delete: bool, text: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            if delete:
                return
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise UserError(f"override '{text}': {where} is a {type(child).__name__}, not a section")
        node = child
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
