"""The SFT work a new user brings (issue 18): a ~9M-parameter Llama in a local Hugging Face directory with
its sentencepiece tokenizer, and 2,000 alpaca rows of 31-321 tokens. Built once per benchmark run."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the a river goat market red blue green anna ben clara hugo went with to of has two three seven "
         "counted saw under over near happy small large quiet loud morning evening bread milk apples").split()


def alpaca_rows(path: Path, count: int = 2000, seed: int = 0) -> Path:
    """Rows whose instruction + input + output run from about 31 to 321 tokens."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            total = rng.randint(25, 300)
            parts = [rng.randint(5, max(6, total // 3)) for _ in range(2)]
            words = [rng.choice(WORDS) for _ in range(total)]
            row = {"instruction": " ".join(words[:parts[0]]), "input": " ".join(words[parts[0]:parts[0] + parts[1]]),
                   "output": " ".join(words[parts[0] + parts[1]:]) or "done"}
            out.write(json.dumps(row) + "\n")
    return path


def model_dir(out: Path, rows: Path) -> Path:
    """A Llama from a config, saved with a sentencepiece tokenizer trained on the rows."""
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    text = out / "corpus.txt"
    text.write_text("\n".join(" ".join(json.loads(line).values()) for line in rows.read_text().splitlines()))
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(out / "tokenizer"), vocab_size=500,
                                   model_type="bpe", bos_id=1, eos_id=2, unk_id=0, pad_id=3, hard_vocab_limit=False,
                                   minloglevel=2)
    tokenizer = LlamaTokenizer.from_pretrained(out)
    tokenizer.pad_token = tokenizer.unk_token
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=6, max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                         pad_token_id=3)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "corpus.txt").unlink()
    return out


def sft_recipe(tmp: Path, name: str, train: dict, **sections: dict) -> tuple[Path, Path, Path]:
    """The SFT work in `tmp`: the alpaca rows, the model dir and a one-process recipe on them (no eval, no final
    checkpoint; `train` and `sections` add to it). Returns (recipe, rows, model)."""
    rows = alpaca_rows(tmp / "alpaca.jsonl")
    model = model_dir(tmp / "model", rows)
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(json.dumps({
        "name": name, "model": {"path": str(model)}, "objective": "sft",
        "data": {"train": str(rows), "sft_format": "alpaca", "seq_len": 512, "eval_fraction": 0},
        "train": {"micro_batch_size": 8, "lr": 1e-4, **train},
        "checkpoint": {"at_end": False}, "eval": {"at_start": False}, **sections}))
    return recipe, rows, model
