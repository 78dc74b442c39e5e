"""sft tokenization follows the chat template: each reply ends exactly as the template ends the turn (one
EOS or turn-end token, whatever text follows it), the labels cover that token, and an alpaca layout can be
set to reproduce LLaMA-Factory's `default` template token for token.

The tokenizer is a sentencepiece BPE trained here that keeps newlines as tokens (so `</s>\\n` really is
EOS followed by a newline token), saved as a Llama tokenizer directory the recipe points at.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from launcher.recipe import load_recipe
from launcher.train.objectives import build_objective
from launcher.train.objectives.base import IGNORE
from launcher.data.prepare import prepare
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

TINY_LLAMA = {"type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2}
# Zephyr's layout: the tokenizer's own template closes every turn with `</s>` and a newline
OWN_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
CHATS = [
    [{"role": "user", "content": "name a color"}, {"role": "assistant", "content": "blue"}],
    [{"role": "system", "content": "you are helpful"}, {"role": "user", "content": "what is 3 plus 4 ?"},
     {"role": "assistant", "content": "the answer is 7 ."}, {"role": "user", "content": "and 2 plus 2 ?"},
     {"role": "assistant", "content": "4"}],
]
ALPACA = [
    {"instruction": "What is 3 plus 4?", "input": "", "output": "The answer is 7."},
    {"instruction": "Name a color.", "input": "Not red, not green.", "output": "Blue"},
    {"instruction": "Add the numbers.", "input": "12 and 30", "output": "42\nDone."},
]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory) -> Path:
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("sp")
    lines = [f"Human: what is {a} plus {b} ? The answer is {a + b} . Assistant: name a color , not red , not green . "
             f"Blue Done . Add the numbers {a} and {b} . System: you are helpful" for a in range(40) for b in range(5)]
    (out / "corpus.txt").write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(
        input=str(out / "corpus.txt"), model_prefix=str(out / "tokenizer"), vocab_size=300, model_type="bpe",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, character_coverage=1.0, minloglevel=2, num_threads=1,
        normalization_rule_name="identity", remove_extra_whitespaces=False, user_defined_symbols=["\n"])
    return out / "tokenizer.model"


def tokenizer_dir(base: Path, sp_model: Path, name: str, chat_template: str | None = None,
                  chatml_tokens: bool = False, eos: str | None = None) -> str:
    from transformers import LlamaTokenizer

    out = base / name
    out.mkdir()
    (out / "tokenizer.model").write_bytes(sp_model.read_bytes())
    tokenizer = LlamaTokenizer.from_pretrained(out)
    if chatml_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if eos:
        tokenizer.eos_token = eos
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(out)
    return str(out)


def prepared(tmp_path: Path, tokenizer: str, rows: list[dict], **data):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    doc = {"name": "t", "objective": "sft", "model": {"config": TINY_LLAMA}, "tokenizer": {"path": tokenizer},
           "data": {"train": str(tmp_path / "train.jsonl"), "seq_len": 256, **data}, "train": {"max_steps": 1},
           "resources": {"launcher": "local", "device": "cpu"}, "output": {"dir": str(tmp_path / "runs")}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(doc))
    recipe = load_recipe(tmp_path / "recipe.yaml")
    result = prepare(recipe, log=lambda _: None)
    columns = result.split("train")
    rows = [(np.asarray(columns["input_ids"][k]).tolist(), np.asarray(columns["labels"][k]).tolist())
            for k in range(len(rows))]
    return result.tokenizer, build_objective(recipe, result.tokenizer), rows


def replies(ids: list[int], labels: list[int]) -> list[list[int]]:
    """The labelled runs of a row: one per assistant reply."""
    runs, run = [], []
    for token, label in zip(ids, labels):
        if label == IGNORE:
            if run:
                runs.append(run)
            run = []
        else:
            assert label == token
            run.append(token)
    return runs + ([run] if run else [])


def hand_built(tokenizer, texts: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    ids, labels = [], []
    for text, trained in texts:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return ids, labels


def test_tokenizer_template_ending_turns_with_eos_and_newline_gets_no_second_eos(tmp_path, sp_model):
    tok_dir = tokenizer_dir(tmp_path, sp_model, "own", OWN_TEMPLATE)
    tokenizer, objective, rows = prepared(tmp_path, tok_dir, [{"messages": m} for m in CHATS])
    eos, newline = tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("\n")
    for (ids, labels), chat in zip(rows, CHATS):
        runs = replies(ids, labels)
        assert len(runs) == sum(m["role"] == "assistant" for m in chat)
        for run in runs:  # each reply: its text, then `</s>\n` as the template has it, all trained
            assert run[-2:] == [eos, newline] and run.count(eos) == 1
        assert ids.count(eos) == len(chat)  # one per turn, user turns included: nothing added
    ids, labels = rows[0]
    assert (ids, labels) == hand_built(tokenizer, [("<|user|>\nname a color</s>\n<|assistant|>\n", False),
                                                   ("blue</s>\n", True)])
    assert objective.stop_ids == [eos]


@pytest.mark.parametrize("eos", ["<|im_end|>", None], ids=["im_end_is_eos", "im_end_is_a_turn_end_token"])
def test_chatml_reply_ends_with_one_im_end_which_generation_stops_on(tmp_path, sp_model, eos):
    tok_dir = tokenizer_dir(tmp_path, sp_model, "chatml", chatml_tokens=True, eos=eos)
    tokenizer, objective, rows = prepared(tmp_path, tok_dir, [{"messages": m} for m in CHATS], chat_template="chatml")
    im_end, newline = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("\n")
    for (ids, labels), chat in zip(rows, CHATS):
        for run in replies(ids, labels):
            assert run[-2:] == [im_end, newline] and run.count(im_end) == 1
            assert tokenizer.convert_tokens_to_ids("</s>") not in run  # no EOS after the turn's own end
        assert ids.count(im_end) == len(chat)
    assert im_end in objective.stop_ids and tokenizer.eos_token_id in objective.stop_ids


def test_plain_template_gets_one_eos_appended(tmp_path, sp_model):
    tok_dir = tokenizer_dir(tmp_path, sp_model, "plain")
    tokenizer, objective, rows = prepared(tmp_path, tok_dir, [{"messages": m} for m in CHATS], chat_template="plain")
    eos = tokenizer.eos_token_id
    for (ids, labels), chat in zip(rows, CHATS):
        runs = replies(ids, labels)
        assert [run.count(eos) for run in runs] == [1] * len(runs) and all(run[-1] == eos for run in runs)
    ids, labels = rows[0]
    expected = hand_built(tokenizer, [("user: name a color\nassistant:", False), (" blue\n", True)])
    assert (ids, labels) == (expected[0] + [eos], expected[1] + [eos])
    assert objective.stop_ids == [eos]


def test_alpaca_layout_reproduces_llama_factory_default_token_for_token(tmp_path, sp_model):
    tok_dir = tokenizer_dir(tmp_path, sp_model, "plain")
    template = ROOT / "recipes" / "templates" / "llama_factory_default.jinja"
    tokenizer, objective, rows = prepared(tmp_path, tok_dir, ALPACA, sft_format="alpaca", alpaca_separator="\n",
                                          chat_template_file=str(template))
    # the text LLaMA-Factory renders for an alpaca row: user content is instruction + "\n" + input (input
    # left out when empty), then "Human: {content}\nAssistant:", then the reply and EOS
    prompts = ["Human: What is 3 plus 4?\nAssistant:",
               "Human: Name a color.\nNot red, not green.\nAssistant:",
               "Human: Add the numbers.\n12 and 30\nAssistant:"]
    for row, prompt, (ids, labels) in zip(ALPACA, prompts, rows):
        # LLaMA-Factory encodes the prompt and the reply apart and puts the EOS id after the reply
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply_ids = tokenizer.encode(row["output"], add_special_tokens=False) + [tokenizer.eos_token_id]
        assert ids == prompt_ids + reply_ids
        assert labels == [IGNORE] * len(prompt_ids) + reply_ids

