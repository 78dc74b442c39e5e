"""seq2seq: encoder-decoder models (T5, BART families) for translation and summarisation.

Training is teacher-forced cross-entropy on the target; eval generates (greedy) and scores the
decoded text against the reference with BLEU (sacrebleu) and ROUGE-1/2/L (rouge-score).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq

from launcher.train.evaluation.scores import bleu, rouge
from launcher.train.objectives.base import ensure_eos, IGNORE, EvalOutput, Objective, check_length, loss_metrics
from launcher.data.rows import Rows, text_value
from launcher.data.store import Ragged


class Seq2Seq(Objective):
    name = "seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"
    shifted_labels = False  # the decoder's inputs are the labels shifted right: every label is predicted

    def adapt_tokenizer(self, tokenizer):
        return ensure_eos(tokenizer)
    generate_kwargs: dict[str, Any] = {}

    def needed_columns(self, kind):
        cols = self.data.columns
        return {cols.source: "data.columns.source", cols.target: "data.columns.target"}

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        cols, data = self.data.columns, self.data
        sources = [data.source_prefix + text_value(rows, i, cols.source, v) for i, v in enumerate(rows.column(cols.source))]
        targets = [text_value(rows, i, cols.target, v) for i, v in enumerate(rows.column(cols.target))]
        target_len = data.target_len or data.seq_len
        inputs = [self._ids(rows, i, cols.source, text, data.seq_len) for i, text in enumerate(sources)]
        labels = [self._ids(rows, i, cols.target, text, target_len) for i, text in enumerate(targets)]
        return {"input_ids": Ragged.from_rows(inputs), "labels": Ragged.from_rows(labels)}

    def _ids(self, rows: Rows, index: int, column: str, text: str, limit: int) -> list[int]:
        """Tokens ending in EOS (as T5 and BART tokenizers make them), cut to `limit` with truncation on."""
        ids = self.tokenizer(text)["input_ids"]
        eos = self.tokenizer.eos_token_id
        if not ids or ids[-1] != eos:
            ids = ids + [eos]
        check_length(rows, index, column, len(ids), limit, self.data.truncation)
        return ids[:limit - 1] + [eos] if len(ids) > limit else ids

    def head_config(self):
        tok = self.tokenizer
        return {"decoder_start_token_id": tok.pad_token_id, "pad_token_id": tok.pad_token_id,
                "eos_token_id": tok.eos_token_id}

    def lengths(self, columns, indices):
        return np.stack([columns["input_ids"].lengths()[indices], columns["labels"].lengths()[indices]], axis=1)

    def train_batch(self, columns, indices, positions):
        features = [{"input_ids": columns["input_ids"][int(i)].tolist(), "labels": columns["labels"][int(i)].tolist()}
                    for i in indices]
        return dict(DataCollatorForSeq2Seq(self.tokenizer, label_pad_token_id=IGNORE, return_tensors="pt")(features))

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        count = self.loss_items(batch)
        generated = generator.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            max_new_tokens=self.recipe.eval.max_new_tokens, do_sample=False, num_beams=1,
            **self.generate_kwargs,
        )
        decode = self.tokenizer.batch_decode
        hypotheses = decode(generated, skip_special_tokens=True)
        references = decode(torch.where(batch["labels"] == IGNORE, self.tokenizer.pad_token_id, batch["labels"]),
                            skip_special_tokens=True)
        rows = [(int(i), (h.strip(), r.strip())) for i, h, r in zip(indices, hypotheses, references)]
        return EvalOutput({"loss_sum": output.loss.item() * count, "loss_count": count}, rows)

    def metrics(self, sums, predictions, columns):
        hypotheses = [h for _, (h, _) in predictions]
        references = [r for _, (_, r) in predictions]
        return {**loss_metrics(sums, perplexity=False), "bleu": bleu(hypotheses, references),
                **rouge(hypotheses, references)}
