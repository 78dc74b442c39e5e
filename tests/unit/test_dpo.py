"""dpo's loss on hand-built pairs equals the DPO / IPO formulas ; the
log-probs cover the answer tokens only, whatever the padding; the LoRA reference is the base model itself;
preference rows that cannot train are one-line errors naming the row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from launcher.errors import UserError
from launcher.recipe import load_recipe
from launcher.train.objectives import build_objective
from launcher.train.objectives.base import IGNORE
from launcher.train.objectives.dpo import answer_logps, dpo_losses
from launcher.data.rows import read_rows

pytestmark = pytest.mark.unit

WORDS = ["<unk>", "<s>", "</s>", "<pad>", "anna", "has", "two", "three", "cats", "cat", "counted", ":", "one", "four"]
TINY_LLAMA = {"type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>").save_pretrained(out)
    return out


def recipe_for(tmp_path: Path, tokenizer: Path, rows: list[dict], *overrides: str, method: str = "lora"):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = {"name": "t", "model": {"config": TINY_LLAMA}, "tokenizer": {"path": str(tokenizer)},
            "data": {"train": str(data), "seq_len": 16}, "objective": "dpo",
            "method": {"type": method}, "train": {"max_steps": 1, "micro_batch_size": 2},
            "resources": {"device": "cpu"}, "output": {"dir": str(tmp_path / "runs")}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_recipe(path, list(overrides))


def objective_and_rows(tmp_path, tokenizer_dir, rows, *overrides):
    from transformers import AutoTokenizer

    recipe = recipe_for(tmp_path, tokenizer_dir, rows, *overrides)
    objective = build_objective(recipe, AutoTokenizer.from_pretrained(tokenizer_dir))
    table = read_rows(recipe.data.train, "auto", tmp_path / "cache", objective.needed_columns("json"))
    return recipe, objective, table


PAIRS = [{"prompt": "anna has two", "chosen": "cats", "rejected": "cat"},
         {"prompt": "anna counted : one two three", "chosen": "four", "rejected": "two three"}]


def test_formulas():
    pc, pr, rc, rr = (torch.tensor(v) for v in ([-1.0, -2.0], [-3.0, -1.5], [-1.5, -2.0], [-2.5, -1.0]))
    h = torch.tensor([(-1.0 + 1.5) - (-3.0 + 2.5), (-2.0 + 2.0) - (-1.5 + 1.0)])
    beta = 0.2
    losses, margins = dpo_losses(pc, pr, rc, rr, beta)
    assert torch.allclose(losses, -torch.log(torch.sigmoid(beta * h)))
    assert torch.allclose(margins, beta * h)
    smoothed, _ = dpo_losses(pc, pr, rc, rr, beta, "sigmoid", 0.1)
    expected = -0.9 * torch.log(torch.sigmoid(beta * h)) - 0.1 * torch.log(torch.sigmoid(-beta * h))
    assert torch.allclose(smoothed, expected)
    ipo, _ = dpo_losses(pc, pr, rc, rr, beta, "ipo")
    assert torch.allclose(ipo, (h - 1 / (2 * beta)) ** 2)
    assert dpo_losses(pc, pc, pc, pc, beta)[0].tolist() == pytest.approx([math.log(2)] * 2)  # policy = reference


def test_loss_on_a_batch_is_the_formula_over_per_answer_log_probs(tmp_path, tokenizer_dir):
    from launcher.train.model import build_model

    recipe, objective, table = objective_and_rows(tmp_path, tokenizer_dir, PAIRS, "dpo.beta=0.5")
    columns = objective.encode(table, "train")
    labels = [columns["chosen_labels"][i].tolist() for i in range(2)]
    assert labels[0] == [IGNORE] * 3 + [WORDS.index("cats"), WORDS.index("</s>")]  # the answer and EOS only
    model = build_model(recipe, objective.tokenizer, objective.head_config(), None)
    batch = objective.train_batch(columns, np.array([0, 1]), np.array([0, 1]))
    assert objective.loss_items(batch) == 2
    with torch.no_grad():
        torch.nn.init.normal_(model.base_model.model.model.layers[0].self_attn.q_proj.lora_B.default.weight)
        loss = objective.loss(model, batch)

        def logp(module, ids, labels):  # one unpadded row at a time
            logits = module(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
            return sum(logits[t - 1, token].item() for t, token in enumerate(labels) if token != IGNORE)

        four = []
        for side in ("chosen", "rejected"):
            for i in range(2):
                ids, lab = columns[f"{side}_ids"][i].tolist(), columns[f"{side}_labels"][i].tolist()
                policy = logp(model, ids, lab)
                with model.disable_adapter():
                    four.append((policy, logp(model, ids, lab)))
    (pc0, rc0), (pc1, rc1), (pr0, rr0), (pr1, rr1) = four
    h = np.array([(pc0 - rc0) - (pr0 - rr0), (pc1 - rc1) - (pr1 - rr1)])
    assert abs(h).max() > 1e-3  # the adapter moved the policy away from the reference
    expected = float(np.mean(-np.log(1 / (1 + np.exp(-0.5 * h)))))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_answer_log_probs_ignore_padding():
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                         num_attention_heads=2, vocab_size=20)).eval()
    short = {"input_ids": torch.tensor([[1, 5, 6, 7]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "labels": torch.tensor([[IGNORE, IGNORE, 6, 7]])}
    padded = {"input_ids": torch.tensor([[1, 5, 6, 7, 3, 3], [1, 5, 8, 9, 10, 2]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6]),
              "labels": torch.tensor([[IGNORE, IGNORE, 6, 7, IGNORE, IGNORE], [IGNORE, IGNORE, 8, 9, 10, 2]])}
    with torch.no_grad():
        alone, together = answer_logps(model, short, mean=False), answer_logps(model, padded, mean=False)
        means = answer_logps(model, padded, mean=True)
    assert together[0].item() == pytest.approx(alone[0].item(), abs=1e-5)
    assert means[1].item() == pytest.approx(together[1].item() / 4, abs=1e-6)


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "anna has", "chosen": "two cats", "rejected": "two cats"},
      {"prompt": "anna has", "chosen": "cats", "rejected": "cats"}],
     "pairs.jsonl:1: columns 'chosen' and 'rejected' are the same (2 such rows in"),
    ([{"prompt": "anna has", "chosen": "cats", "rejected": "cat"}, {"prompt": "anna has", "chosen": " ", "rejected": "cat"}],
     "pairs.jsonl:2: column 'chosen': empty"),
    ([{"prompt": "anna has", "chosen": "cats", "rejected": None}], "pairs.jsonl:1: column 'rejected': missing"),
    ([{"prompt": "anna has " * 9, "chosen": "cats", "rejected": "cat"}],
     "pairs.jsonl:1: column 'prompt': 20 tokens, longer than data.seq_len=16 and data.truncation is false"),
])
def test_rows_that_cannot_train_are_one_line_errors(tmp_path, tokenizer_dir, rows, message):
    _, objective, table = objective_and_rows(tmp_path, tokenizer_dir, rows, "data.truncation=false")
    with pytest.raises(UserError) as error:
        objective.encode(table, "train")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_prompt_that_fills_the_window_leaves_no_room_for_the_answer(tmp_path, tokenizer_dir):
    _, objective, table = objective_and_rows(tmp_path, tokenizer_dir,
                                             [{"prompt": "anna has " * 9, "chosen": "cats", "rejected": "cat"}])
    with pytest.raises(UserError, match=r"pairs.jsonl:1: column 'prompt': 18 tokens leave no room for the answer"):
        objective.encode(table, "train")


def test_chat_rows_train_on_the_assistant_answer(tmp_path, tokenizer_dir):
    rows = [{"prompt": [{"role": "user", "content": "anna has two"}],
             "chosen": [{"role": "assistant", "content": "cats"}], "rejected": "cat"}]
    _, objective, table = objective_and_rows(tmp_path, tokenizer_dir, rows, "data.seq_len=64", "data.chat_template=plain")
    columns = objective.encode(table, "train")
    tokenizer = objective.tokenizer
    for side, word in (("chosen", "cats"), ("rejected", "cat")):
        labels = [t for t in columns[f"{side}_labels"][0].tolist() if t != IGNORE]
        assert tokenizer.decode(labels).split()[0] == word


def test_answers_that_are_whole_conversations_take_their_prompt_from_them(tmp_path, tokenizer_dir):
    """UltraFeedback's layout: chosen/rejected hold the user turn too; the labels cover the assistant's."""
    user = {"role": "user", "content": "anna has two"}
    rows = [{"prompt": "anna has two", "chosen": [user, {"role": "assistant", "content": "cats"}],
             "rejected": [user, {"role": "assistant", "content": "cat"}]}]
    _, objective, table = objective_and_rows(tmp_path, tokenizer_dir, rows, "data.seq_len=64", "data.chat_template=plain")
    columns = objective.encode(table, "train")
    ids = columns["chosen_ids"][0].tolist()
    assert objective.tokenizer.convert_ids_to_tokens(ids)[1:4] == ["anna", "has", "two"]  # after "user:" (unknown)
    labels = [t for t in columns["rejected_labels"][0].tolist() if t != IGNORE]
    assert objective.tokenizer.decode(labels).split()[0] == "cat"
