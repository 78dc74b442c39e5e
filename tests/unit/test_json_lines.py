"""JSON lines read with pyarrow directly (no `datasets` import in the worker) give the table datasets gives, and
whatever pyarrow does not read as JSON lines still goes through datasets and its one-line explanations."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from launcher.data import rows
from launcher.errors import UserError
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

ROWS = [
    {"instruction": "name a fruit", "input": "", "output": "an apple", "tags": ["a", "b"], "score": 1},
    {"instruction": "Übersetze: cat", "output": "Katze 🐈", "tags": [], "score": 2.5,
     "translation": {"en": "a cat", "de": "eine Katze"}},
    {"instruction": "count", "input": None, "output": "one two", "messages": [{"role": "user", "content": "hi"}]},
    {"instruction": "greet", "output": "hello", "messages": [{"role": "user", "content": "hi", "name": "ann"}]},
]


def _write(path, lines: list[str], bom: bool = False) -> str:
    data = ("\ufeff" if bom else "") + "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name, bom", [("rows.jsonl", False), ("rows.jsonl", True), ("rows.jsonl.gz", False)])
def test_the_direct_read_is_the_table_datasets_reads(tmp_path, name, bom):
    file = _write(tmp_path / name, [json.dumps(r, ensure_ascii=False) for r in ROWS[:1]] + [""]
                  + [json.dumps(r, ensure_ascii=False) for r in ROWS[1:]], bom)
    direct = rows._json_lines(rows._small_file(file))
    assert direct is not None
    through_datasets = rows._with_datasets(file, "json", tmp_path / "cache")
    assert direct.to_pylist() == through_datasets.to_pylist()
    # messages whose keys differ stay objects both ways (datasets' default made them JSON strings)
    assert direct["messages"].to_pylist()[3] == [{"role": "user", "content": "hi", "name": "ann"}]
    assert direct.column_names == through_datasets.column_names

    needed = {"instruction": "data.columns.instruction", "translation.de": "data.columns.target"}
    read = rows.read_rows([file], "auto", tmp_path / "cache", needed, optional=("input", "missing"))
    assert read.column_names == ["instruction", "translation.de", "input"]
    assert read.column("translation.de") == [None, "eine Katze", None, None]
    assert read.subset([2, 0]).column("instruction") == ["count", "name a fruit"]
    assert read.subset([2, 0]).where(0) == f"{file}:4"  # the blank line counted: the file's own line number


def test_what_pyarrow_does_not_read_as_json_lines_goes_through_datasets(tmp_path):
    array = tmp_path / "array.json"
    array.write_text(json.dumps(ROWS[:2]))
    assert rows._json_lines(rows._small_file(str(array))) is None
    read = rows.read_rows([str(array)], "auto", tmp_path / "cache", {"output": "data.columns.output"})
    assert read.column("output") == ["an apple", "Katze 🐈"]

    mixed = _write(tmp_path / "mixed.jsonl", ['{"text": "a", "label": 1}', '{"text": "b", "label": {"x": 1}}'])
    assert rows._json_lines(rows._small_file(mixed)) is None

    broken = _write(tmp_path / "broken.jsonl", ['{"text": "a"}', '{"text": "b"'])
    assert rows._json_lines(rows._small_file(broken)) is None
    with pytest.raises(UserError, match=r"broken.jsonl:2: not valid JSON"):
        rows.read_rows([broken], "auto", tmp_path / "cache", {"text": "data.columns.text"})


def test_reading_json_lines_imports_no_datasets(tmp_path):
    file = _write(tmp_path / "rows.jsonl", [json.dumps(r) for r in ROWS])
    code = ("import sys; from pathlib import Path; from launcher.data.rows import read_rows; "
            "r = read_rows([sys.argv[1]], 'auto', Path(sys.argv[2]), {'output': 'k'}); "
            "print(len(r), 'datasets' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, file, str(tmp_path / "cache")], cwd=ROOT, text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "False"]
