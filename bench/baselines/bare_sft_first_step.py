"""The bare PyTorch script a user would write for the same SFT start: load the tokenizer, tokenize every
alpaca row (loss on the output only), load the model, train one step of micro batch 8. Prints the wall-clock
time (time.time()) at which that first step ended, and the seconds it spent tokenizing (what a warm
prepared-data cache saves llaunch).

    python bench/baselines/bare_sft_first_step.py --data rows.jsonl --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    examples, tokenizing = [], time.perf_counter()
    for line in open(args.data, encoding="utf-8"):
        row = json.loads(line)
        prompt = tokenizer(f"{row['instruction']}\n\n{row['input']}", add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((prompt + answer, [-100] * len(prompt) + answer))
    tokenizing = time.perf_counter() - tokenizing
    model = AutoModelForCausalLM.from_pretrained(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = examples[:8]
    longest = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (longest - len(ids)) for ids, _ in batch])
    labels = torch.tensor([lab + [-100] * (longest - len(lab)) for _, lab in batch])
    attention = (torch.arange(longest)[None, :] < torch.tensor([len(ids) for ids, _ in batch])[:, None]).long()
    model(input_ids=input_ids, attention_mask=attention, labels=labels).loss.backward()
    optimizer.step()
    print(json.dumps({"first_step_end": time.time(), "tokenizing_seconds": tokenizing}))


if __name__ == "__main__":
    main()
