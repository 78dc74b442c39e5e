"""One objective = its data preparation, its batches, its model head, its loss and its eval metrics.

The train loop and the evaluator talk only to this interface. Sample k of a run is a pure function of
(seed, k) (sampling.py); anything random in a batch (MLM masks) is drawn from a generator seeded by
(seed, sample position), never from a stateful one, so a resumed run draws exactly the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.data.rows import Rows
from launcher.data.store import Ragged

IGNORE = -100  # label value the losses skip


@dataclass
class EvalOutput:
    """What one eval batch contributes: sums added over all ranks, per-example predictions gathered to rank 0."""

    sums: dict[str, float] = field(default_factory=dict)
    predictions: list[tuple[int, Any]] = field(default_factory=list)


class Objective:
    name = ""
    auto_class = "AutoModelForCausalLM"
    # What a step's loss averages over: every target token of the global batch (labels other than IGNORE;
    # a causal LM predicts from its second position on), or, for per-example objectives, every example.
    per_example = False
    shifted_labels = True

    def __init__(self, recipe: Recipe, tokenizer: PreTrainedTokenizerBase, labels: list[str] | None = None):
        self.recipe, self.data = recipe, recipe.data
        self.tokenizer = self.adapt_tokenizer(tokenizer)
        # training batches pad on the right (labels too); left padding would shift the positions a
        # decoder sees against those it generates at (prompts for generation are left-padded by hand)
        self.tokenizer.padding_side = "right"
        self.labels = labels

    # ---- preparation (rank 0, once per content key) ----
    def adapt_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Add what the objective needs (a mask token, a pad token); idempotent."""
        return tokenizer

    def needed_columns(self, kind: str) -> dict[str, str]:
        """{column: recipe key naming it} that every row of a `kind` file (text, json, ...) must have."""
        return {self.text_column(kind): "data.text_field"}

    def text_column(self, kind: str) -> str:
        return "text" if kind == "text" else self.data.text_field

    has_labels = False  # a head with named labels (seq_cls, token_cls): data.labels, else learnt from data.train

    def seen_labels(self, train: Rows) -> set[str]:
        """The label names in these train rows (read only without data.labels)."""
        return set()

    def labels_from(self, seen: set[str]) -> list[str] | None:
        """The head's label names: data.labels, else those seen in every train shard."""
        return None

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        raise NotImplementedError

    # Preparation encodes a shard batch by batch (launcher/data/parts.py) and lays the parts end to end:
    # `streams` are columns of token streams cut into data.seq_len blocks only then (clm, mlm);
    # `row_numbers` are columns holding row numbers of the split (qa's windows name their example).
    streams: tuple[str, ...] = ()
    row_numbers: tuple[str, ...] = ()

    def encode_part(self, rows: Rows, split: str) -> dict[str, Any]:
        """A batch of a shard's rows as part columns; `encode` gives the whole split at once (llaunch eval)."""
        return self.encode(rows, split)

    def size(self, columns: dict[str, Any]) -> int:
        """Number of training samples (what the global order permutes)."""
        return len(columns["input_ids"])

    # ---- model ----
    def head_config(self) -> dict[str, Any]:
        """Extra config keys for the model (num_labels, id2label, ...)."""
        return {}

    # ---- batches ----
    def train_batch(self, columns: dict[str, Any], indices: np.ndarray, positions: np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def eval_batch(self, columns: dict[str, Any], indices: np.ndarray) -> dict[str, torch.Tensor]:
        positions = np.asarray(indices)  # eval randomness (masks) is fixed per example
        return self.train_batch(columns, indices, positions)

    def lengths(self, columns: dict[str, Any], indices: np.ndarray) -> np.ndarray:
        """Tokens the model reads for each example, one column per padded input (what micro_batch_tokens budgets)."""
        column = columns["input_ids"] if "input_ids" in columns else columns["blocks"]
        if isinstance(column, Ragged):
            return column.lengths()[indices]
        return np.full(len(indices), column.shape[1])

    def resumed(self, step: int) -> None:
        """The model in hand resumed at `step` (> 0): its weights are no longer the starting ones."""

    def loss_items(self, batch: dict[str, torch.Tensor]) -> int:
        """How many terms the model's mean loss over `batch` averages: target tokens, or examples."""
        if self.per_example:
            return len(batch["input_ids"])
        labels = batch["labels"][:, 1:] if self.shifted_labels else batch["labels"]
        return int((labels != IGNORE).sum())

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean loss of a micro batch (the train loop weighs it by loss_items); default: the model's own."""
        return model(**batch).loss

    # ---- evaluation ----
    def eval_step(self, model, generator, batch: dict[str, torch.Tensor], indices: np.ndarray,
                  columns: dict[str, Any]) -> EvalOutput:
        """Default: token-weighted loss; `generator` is the bare model for generate()."""
        output = model(**batch)
        count = self.loss_items(batch)
        return EvalOutput({"loss_sum": output.loss.item() * count, "loss_count": count})

    def metrics(self, sums: dict[str, float], predictions: list[tuple[int, Any]], columns: dict[str, Any]) -> dict[str, float]:
        return loss_metrics(sums)


def loss_metrics(sums: dict[str, float], perplexity: bool = True) -> dict[str, float]:
    import math

    loss = sums.get("loss_sum", 0.0) / max(sums.get("loss_count", 0.0), 1.0)
    out = {"loss": loss}
    if perplexity:
        out["perplexity"] = math.exp(min(loss, 50))
    return out


def ensure_eos(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Generation needs an end token: an encoder tokenizer's [SEP], else a new one."""
    if tokenizer.eos_token is None:
        if tokenizer.sep_token is not None:
            tokenizer.eos_token = tokenizer.sep_token
        else:
            tokenizer.add_special_tokens({"eos_token": "</s>"})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to the device; plain values (use_cache=False) as they are."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def pad_rows(rows: list[np.ndarray], value: int, side: str = "right") -> torch.Tensor:
    """Stack rows padded to the longest one in this batch (never to a fixed maximum)."""
    longest = max(len(row) for row in rows)
    out = np.full((len(rows), longest), value, dtype=np.int64)
    for i, row in enumerate(rows):
        if side == "right":
            out[i, :len(row)] = row
        else:
            out[i, longest - len(row):] = row
    return torch.from_numpy(out)


def check_length(rows: Rows, index: int, column: str, length: int, limit: int, truncation: bool) -> None:
    """With data.truncation off, an example longer than the window is an error naming its row."""
    if length > limit and not truncation:
        raise UserError(f"{rows.where(index)}: column '{column}': {length} tokens, longer than data.seq_len={limit} "
                        f"and data.truncation is false; raise data.seq_len or set data.truncation=true")


def declared_or_seen(declared: list[str] | None, seen: list[str], key: str = "data.labels") -> list[str]:
    if declared is not None:
        return list(declared)
    if not seen:
        raise UserError(f"{key}: no labels found in data.train")
    return sorted(seen)
