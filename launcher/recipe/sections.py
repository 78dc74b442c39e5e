"""The base of every recipe section: unknown keys are errors, never silently dropped."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value
