"""Inputs named as corpora are stored (globs, shard directories, .gz/.zst, save_to_disk directories) give
the same prepared data as one plain file, ShareGPT rows the same as messages; a damaged shard is one line naming it."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import zstandard

from launcher.data.prepare import prepare
from launcher.errors import UserError
from tests.integration.test_objectives_data import TINY_LLAMA, jsonl, make_recipe

pytestmark = pytest.mark.integration

ROWS = [{"text": f"review number {i} was {'great' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
        for i in range(30)]


def _lines(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _blocks(tmp_path, name, train):
    (tmp_path / f"prep-{name}").mkdir()
    prepared = prepare(make_recipe(tmp_path / f"prep-{name}", "seq_cls", {"train": train}), log=lambda _: None)
    return prepared.split("train")["input_ids"]


def test_globs_shard_dirs_compressed_and_saved_datasets_read_as_one_file(tmp_path):
    import datasets

    plain = tmp_path / "all.jsonl"
    plain.write_bytes(_lines(ROWS))
    shards = tmp_path / "corpus"
    shards.mkdir()
    (shards / "a-0.jsonl.gz").write_bytes(gzip.compress(_lines(ROWS[:10])))
    (shards / "a-1.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_lines(ROWS[10:20])))
    (shards / "a-2.jsonl").write_bytes(_lines(ROWS[20:]))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    expected = _blocks(tmp_path, "plain", [str(plain)])
    for name, train in (("dir", [str(shards)]), ("glob", [str(shards / "a-*")]), ("saved", [str(tmp_path / "saved")])):
        got = _blocks(tmp_path, name, train)
        assert len(got) == 30 and all(np.array_equal(got[k], expected[k]) for k in range(30)), name


@pytest.mark.parametrize("damage", ["gz", "zst", "parquet"])
def test_a_damaged_shard_is_one_line_naming_it(tmp_path, damage):
    data = _lines(ROWS * 50)
    if damage == "gz":
        shard, body = tmp_path / "bad.jsonl.gz", gzip.compress(data)
    elif damage == "zst":
        shard, body = tmp_path / "bad.jsonl.zst", zstandard.ZstdCompressor().compress(data)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "whole.parquet")
        shard, body = tmp_path / "bad.parquet", (tmp_path / "whole.parquet").read_bytes()
    shard.write_bytes(body[: len(body) // 2])
    with pytest.raises(UserError) as err:
        prepare(make_recipe(tmp_path, "seq_cls", {"train": str(shard)}), log=lambda _: None)
    message = str(err.value)
    assert message.startswith(str(shard)) and "\n" not in message
    if damage != "parquet":
        assert "truncated or corrupt compressed data" in message and f"{shard}:" in message


def test_a_source_without_the_objectives_column_is_named(tmp_path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_bytes(_lines(ROWS))
    bad.write_bytes(_lines([{"text": "no label"}]))
    train = [{"path": str(good), "weight": 0.5}, {"path": str(bad), "weight": 0.5}]
    with pytest.raises(UserError, match=r"bad.jsonl: rows have no 'label' column \(columns: text\)"):
        prepare(make_recipe(tmp_path, "seq_cls", {"train": train}), log=lambda _: None)


def _chat(user: str, reply: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def test_sharegpt_rows_prepare_as_the_same_messages_do(tmp_path):
    pairs = [("what color is the sky", "blue"), ("say hello", "hello there")]
    share = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in pairs]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = {"chat_template": "chatml", "seq_len": 64}
    got = prepare(make_recipe(tmp_path / "a", "sft", {"train": jsonl(tmp_path / "s.jsonl", share), **settings},
                              TINY_LLAMA), log=lambda _: None).split("train")
    want = prepare(make_recipe(tmp_path / "b", "sft", {"train": jsonl(tmp_path / "m.jsonl", [_chat(q, a) for q, a in pairs]),
                                                       **settings}, TINY_LLAMA), log=lambda _: None).split("train")
    assert all(np.array_equal(got[c][k], want[c][k]) for c in ("input_ids", "labels") for k in range(2))
    bad = [{"conversations": [{"from": "robot", "value": "hi"}]}]
    with pytest.raises(UserError, match=r"bad.jsonl:1: column 'conversations': turn 0: 'from' is not one of system"):
        prepare(make_recipe(tmp_path, "sft", {"train": jsonl(tmp_path / "bad.jsonl", bad), **settings}, TINY_LLAMA),
                log=lambda _: None)


def test_a_shard_changed_after_preparation_is_prepared_again(tmp_path):
    shards = tmp_path / "corpus"
    shards.mkdir()
    (shards / "a.jsonl.gz").write_bytes(gzip.compress(_lines(ROWS)))
    recipe = make_recipe(tmp_path, "seq_cls", {"train": str(shards)})
    first = prepare(recipe, log=lambda _: None)
    assert prepare(recipe, log=lambda _: None).cached
    (shards / "a.jsonl.gz").write_bytes(gzip.compress(_lines(ROWS[:20])))
    again = prepare(recipe, log=lambda _: None)
    assert not again.cached and again.dir != first.dir and again.meta["sizes"]["train"] == 20
