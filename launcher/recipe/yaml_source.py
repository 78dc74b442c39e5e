"""Read a YAML recipe file into a dict, remembering the line of every key for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from launcher.errors import UserError

KeyPath = tuple[str, ...]


def _walk_lines(node: yaml.Node, path: KeyPath, where: str, out: dict[KeyPath, str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[path + (key,)] = f"{where}:{key_node.start_mark.line + 1}"
            _walk_lines(value_node, path + (key,), where, out)


def _parse(text: str) -> tuple[yaml.Node, Any]:
    """libyaml's loader (10x PyYAML's: every command and worker reads recipes); a file it refuses is read again
    by PyYAML, whose error messages say more ("expected ',' or ']'" where libyaml says "did not find expected")."""
    try:
        fast = yaml.CSafeLoader
        return yaml.compose(text, Loader=fast), yaml.load(text, Loader=fast)
    except (AttributeError, yaml.YAMLError):  # AttributeError: PyYAML built without libyaml
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.load(text, Loader=yaml.SafeLoader)


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Return (mapping, {key path: "file:line"}); a user error for anything that is not a mapping."""
    if not path.exists():
        raise UserError(f"{path}: recipe file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a recipe .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node, data = _parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.problem:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise UserError(f"{path}{line}: invalid YAML: {exc.problem or exc.context}{context}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        raise UserError(f"{path}: recipe is empty; expected a mapping with name, model, data, train")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections (name:, model:, ...), got {type(data).__name__}")
    lines: dict[KeyPath, str] = {}
    _walk_lines(node, (), str(path), lines)
    return data, lines
