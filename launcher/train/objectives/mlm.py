"""mlm: BERT-style masked language modelling on packed blocks.

15% of the tokens (data.mlm_probability) are chosen; of those 80% become the mask token, 10% a random
token, 10% stay. With data.whole_word_mask every piece of a chosen word is chosen together. The
masks of sample k are drawn from a generator seeded by (seed, k): a resumed run masks identically
(the library collator draws from a stateful generator, so it is not used here).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from launcher.errors import UserError
from launcher.train.objectives.base import IGNORE, EvalOutput, Objective, loss_metrics
from launcher.train.objectives.clm import document_stream, pack, split_name
from launcher.data.rows import Rows

TRAIN_STREAM, EVAL_STREAM = 1, 2


class MaskedLM(Objective):
    name = "mlm"
    auto_class = "AutoModelForMaskedLM"
    shifted_labels = False
    streams = ("blocks", "word_start")

    def adapt_tokenizer(self, tokenizer):
        if tokenizer.mask_token is None:
            tokenizer.add_special_tokens({"mask_token": "<mask>"})
        return tokenizer

    def encode_part(self, rows: Rows, split: str) -> dict[str, Any]:
        tok = self.tokenizer
        separator = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        stream = document_stream(rows, self.text_column(rows.kind), tok, separator)
        columns = {"blocks": stream}
        if self.data.whole_word_mask:
            columns["word_start"] = self._word_start_table[stream]
        return columns

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        return {name: pack(column, self.data.seq_len, split_name(split))
                for name, column in self.encode_part(rows, split).items()}

    @cached_property
    def _word_start_table(self) -> np.ndarray:
        return word_start_table(self.tokenizer)

    def size(self, columns):
        return len(columns["blocks"])

    def train_batch(self, columns, indices, positions):
        return self._masked(columns, indices, positions, TRAIN_STREAM)

    def eval_batch(self, columns, indices):
        return self._masked(columns, indices, np.asarray(indices), EVAL_STREAM)  # the same masks at every eval

    def _masked(self, columns, indices, positions, stream: int) -> dict[str, torch.Tensor]:
        blocks = columns["blocks"][indices].astype(np.int64)
        starts = columns["word_start"][indices] if "word_start" in columns else None
        special = self._special_ids()
        inputs, labels = blocks.copy(), np.full_like(blocks, IGNORE)
        for row in range(len(blocks)):
            rng = np.random.default_rng([self.recipe.train.seed, int(positions[row]), stream])
            chosen = choose_masked(blocks[row], special, self.data.mlm_probability, rng,
                                   None if starts is None else starts[row])
            labels[row, chosen] = blocks[row, chosen]
            action = rng.random(len(chosen))
            inputs[row, chosen[action < 0.8]] = self.tokenizer.mask_token_id
            randomized = chosen[(action >= 0.8) & (action < 0.9)]
            inputs[row, randomized] = rng.integers(0, len(self.tokenizer), len(randomized))
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels)}

    def _special_ids(self) -> np.ndarray:
        if not hasattr(self, "_special"):
            self._special = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)
        return self._special

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        labels = batch["labels"]
        masked = labels != IGNORE
        count = int(masked.sum())
        correct = int((output.logits.argmax(-1)[masked] == labels[masked]).sum())
        return EvalOutput({"loss_sum": output.loss.item() * count, "loss_count": count, "correct": correct})

    def metrics(self, sums, predictions, columns):
        return {**loss_metrics(sums), "accuracy": sums.get("correct", 0.0) / max(sums.get("loss_count", 0.0), 1.0)}


def choose_masked(block: np.ndarray, special: np.ndarray, probability: float, rng: np.random.Generator,
                  word_start: np.ndarray | None) -> np.ndarray:
    """Positions to predict in one block: each candidate (or word) with `probability`, at least one."""
    candidate = ~np.isin(block, special)
    if word_start is None:
        chosen = candidate & (rng.random(len(block)) < probability)
    else:
        word = np.cumsum(word_start | ~candidate) - 1  # a special token is a word of its own
        picked = rng.random(int(word[-1]) + 1) < probability
        chosen = candidate & picked[word]
    if not chosen.any() and candidate.any():
        chosen[rng.choice(np.flatnonzero(candidate))] = True
    return np.flatnonzero(chosen)


def word_start_table(tokenizer) -> np.ndarray:
    """True for a token that begins a word: WordPiece continuations start with '##', sentencepiece words with '▁'."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if any(piece and piece.startswith("▁") for piece in vocab):
        return np.array([bool(piece) and piece.startswith("▁") for piece in vocab])
    if any(piece and piece.startswith("##") for piece in vocab):
        return np.array([not (piece or "").startswith("##") for piece in vocab])
    raise UserError("data.whole_word_mask: cannot tell word starts for this tokenizer (neither WordPiece '##' "
                    "nor sentencepiece '▁' pieces); set data.whole_word_mask=false")
