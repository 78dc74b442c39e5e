"""The README's recipe reference is the one generated from the schema."""

from __future__ import annotations

import os

import pytest

from launcher.recipe.reference import markdown_reference
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_readme_recipe_reference_is_up_to_date():
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- reference:start -->\n", "<!-- reference:end -->"
    head, rest = readme.split(start)
    current, tail = rest.split(end)
    if os.environ.get("UPDATE_GOLDEN"):
        (ROOT / "README.md").write_text(head + start + markdown_reference() + end + tail)
        return
    assert current == markdown_reference(), "README recipe reference is stale; regenerate with UPDATE_GOLDEN=1"


def test_each_key_is_one_table_row_even_with_a_newline_default():
    header, rule, *rows = markdown_reference().splitlines()
    assert all(row.startswith("| `") and row.endswith(" |") for row in rows)
    [separator] = [row for row in rows if row.startswith("| `data.alpaca_separator` |")]
    assert '| `"\\n\\n"` |' in separator  # the newline default shown as a quoted literal
