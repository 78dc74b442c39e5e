"""The shard list an array job is sized by (known without torch), and inputs fingerprinted once: an unchanged
file is not read again, a rewritten one is hashed again even with its size and mtime put back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from launcher.data import fingerprint
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_train_eval_shards_are_listed_in_index_order_without_torch(tmp_path):
    corpus = tmp_path / "web"
    corpus.mkdir()
    for name in ("b.jsonl.gz", "a.jsonl.zst", "notes.md"):
        (corpus / name).write_bytes(b"")
    (tmp_path / "code-1.parquet").write_bytes(b"")
    (tmp_path / "eval.jsonl").write_text('{"text": "x"}\n')
    recipe = {"name": "t", "objective": "clm", "model": {"config": {"type": "llama"}}, "tokenizer": {"path": "tok"},
              "data": {"train": [{"path": str(corpus), "weight": 2}, {"path": str(tmp_path / "code-*"), "weight": 1}],
                       "eval": str(tmp_path / "eval.jsonl")}, "train": {"max_steps": 1}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code = ("import sys; from launcher.data.shards import train_eval_shards; from launcher.recipe import load_recipe; "
            "print(train_eval_shards(load_recipe(sys.argv[1]))); print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.yaml")], cwd=ROOT, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [repr([str(corpus / "a.jsonl.zst"), str(corpus / "b.jsonl.gz"),
                                              str(tmp_path / "code-1.parquet"), str(tmp_path / "eval.jsonl")]), "[]"]


def test_an_unchanged_file_is_hashed_once_and_a_rewritten_one_again(tmp_path, monkeypatch):
    data, cache = tmp_path / "a.jsonl", tmp_path / "cache"
    data.write_text('{"text": "first"}\n')
    first = fingerprint.file_digest(str(data), cache)
    opened = []
    real_open = open
    monkeypatch.setattr(fingerprint, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k),
                        raising=False)
    assert fingerprint.file_digest(str(data), cache) == first and opened == []  # a stat and the kept digest
    stat = data.stat()
    data.write_text('{"text": "other"}\n')  # same size
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old mtime: only ctime tells
    assert fingerprint.file_digest(str(data), cache) != first and opened == [str(data)]
