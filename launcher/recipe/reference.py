"""The recipe reference as a Markdown table, generated from the schema (the README embeds it)."""

from __future__ import annotations

import json
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from launcher.recipe.schema import Recipe


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        if sub is None:
            for arg in typing.get_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    sub = arg
        if sub is not None:
            rows += _rows(sub, key + ".")
            continue
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "**required**"
        else:
            default = _default_text(field.default_factory() if field.default_factory else field.default)
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {default} | {field.description or ''} |")
    return rows


def _default_text(value) -> str:
    """`value`; a string holding newlines or tabs as a quoted literal ("\\n\\n"), which a table cell can hold."""
    if isinstance(value, str) and not value.isprintable():
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def markdown_reference() -> str:
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(header + _rows(Recipe, "")) + "\n"
