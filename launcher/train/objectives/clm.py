"""clm: causal language modelling on packed blocks (documents joined by EOS, cut into seq_len tokens)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from launcher.errors import UserError
from launcher.train.objectives.base import Objective
from launcher.data.rows import Rows


def tokenize_documents(rows: Rows, column: str, tokenizer, num_proc: int, separator: int | None):
    """Token ids of every non-empty document, each followed by `separator` (EOS / SEP)."""

    def encode(batch):
        ids = tokenizer(batch[column], add_special_tokens=False)["input_ids"]
        tail = [separator] if separator is not None else []
        return {"ids": [row + tail for row, text in zip(ids, batch[column]) if text and text.strip()]}

    return rows.table.map(encode, batched=True, num_proc=num_proc if num_proc > 1 else None,
                          remove_columns=rows.table.column_names)


def pack(docs, seq_len: int, what: str) -> np.ndarray:
    """Concatenate documents and cut into full blocks; the remainder is dropped."""
    import pyarrow.compute as pc

    # arrow flattens the ragged id lists in C, without a Python object per token
    flat = pc.list_flatten(docs.data.column("ids")).to_numpy().astype(np.int32, copy=False)
    blocks = len(flat) // seq_len
    if blocks == 0:
        raise UserError(f"{what}: {len(flat)} tokens, fewer than one sequence of data.seq_len={seq_len}")
    return flat[: blocks * seq_len].reshape(blocks, seq_len)


class CausalLM(Objective):
    name = "clm"

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        docs = tokenize_documents(rows, self.text_column(rows.kind), self.tokenizer, self.data.num_proc,
                                  self.tokenizer.eos_token_id)
        return {"blocks": pack(docs, self.data.seq_len, "data.train" if split == "train" else "eval data")}

    def size(self, columns: dict[str, Any]) -> int:
        return len(columns["blocks"])

    def train_batch(self, columns, indices, positions):
        batch = torch.from_numpy(columns["blocks"][indices].astype(np.int64))
        return {"input_ids": batch, "labels": batch}
