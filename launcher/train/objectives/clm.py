"""clm: causal language modelling on packed blocks (documents joined by EOS, cut into seq_len tokens; preparation
lays the shards' token streams end to end before cutting, so blocks cross shard boundaries as in one file)."""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import torch

from launcher.errors import UserError
from launcher.train.objectives.base import Objective
from launcher.data.rows import Rows


def document_stream(rows: Rows, column: str, tokenizer, separator: int | None) -> np.ndarray:
    """Token ids of every non-empty document, each followed by `separator` (EOS / SEP), laid end to end."""
    texts = [text for text in rows.column(column) if text and text.strip()]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    tail = [separator] if separator is not None else []
    total = sum(len(row) for row in ids) + len(tail) * len(ids)
    return np.fromiter(chain.from_iterable(row + tail for row in ids), dtype=np.int32, count=total)


def pack(stream: np.ndarray, seq_len: int, what: str) -> np.ndarray:
    """Cut a token stream into full blocks; the remainder is dropped."""
    blocks = len(stream) // seq_len
    if blocks == 0:
        raise UserError(f"{what}: {len(stream)} tokens, fewer than one sequence of data.seq_len={seq_len}")
    return stream[: blocks * seq_len].reshape(blocks, seq_len)


def split_name(split: str) -> str:
    return "data.train" if split == "train" else "eval data"


class CausalLM(Objective):
    name = "clm"

    streams = ("blocks",)

    def encode_part(self, rows: Rows, split: str) -> dict[str, Any]:
        return {"blocks": document_stream(rows, self.text_column(rows.kind), self.tokenizer, self.tokenizer.eos_token_id)}

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        return {"blocks": pack(self.encode_part(rows, split)["blocks"], self.data.seq_len, split_name(split))}

    def size(self, columns: dict[str, Any]) -> int:
        return len(columns["blocks"])

    def train_batch(self, columns, indices, positions):
        batch = torch.from_numpy(columns["blocks"][indices].astype(np.int64))
        return {"input_ids": batch, "labels": batch}
