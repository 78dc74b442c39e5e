"""A tokenizer trained from compressed JSON shards learns the rows' text, not the compressed bytes or the JSON
around the text (sentencepiece reads plain text files only)."""

from __future__ import annotations

import gzip
import json

import pytest

from launcher.data.tokenizer import load_tokenizer
from launcher.errors import UserError
from launcher.recipe import load_recipe
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def _recipe(tmp_path, files):
    return load_recipe(ROOT / "recipes" / "quickstart.yaml", [f"tokenizer.train.files=[{','.join(files)}]",
                                                             "tokenizer.train.vocab_size=120",
                                                             f"output.cache_dir={tmp_path / 'cache'}"])


def test_a_tokenizer_trained_on_jsonl_gz_learns_the_text_of_the_rows(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"tell me about the red fox number {i}"},
                          {"role": "assistant", "content": "the quick brown fox jumps over the lazy dog"}]}
            for i in range(2000)]
    with gzip.open(tmp_path / "chat.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))
    tokenizer = load_tokenizer(_recipe(tmp_path, [str(tmp_path / "chat.jsonl.gz")]), tmp_path / "cache")
    assert tokenizer.tokenize("the quick brown fox") == ["▁the", "▁quick", "▁brown", "▁fox"]
    assert "▁\"role\":" not in tokenizer.get_vocab() and "role" not in tokenizer.get_vocab()


def test_a_bad_json_line_in_the_tokenizer_corpus_is_one_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON"):
        load_tokenizer(_recipe(tmp_path, [str(tmp_path / "bad.jsonl")]), tmp_path / "cache")
