"""seq_cls: a classification head on an encoder or a decoder; single-label (softmax) or multi-label (sigmoid)."""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import DataCollatorWithPadding

from launcher.train.evaluation.scores import classification_scores
from launcher.train.objectives.base import (EvalOutput, Objective, check_length, declared_or_seen, loss_metrics)
from launcher.data.rows import Rows, bad_row, text_value
from launcher.data.store import Ragged


class SequenceClassification(Objective):
    name = "seq_cls"
    auto_class = "AutoModelForSequenceClassification"
    per_example = True
    has_labels = True

    def needed_columns(self, kind):
        needed = {self.text_column(kind): "data.text_field", self.data.columns.label: "data.columns.label"}
        if self.data.columns.text_pair:
            needed[self.data.columns.text_pair] = "data.columns.text_pair"
        return needed

    def seen_labels(self, train: Rows) -> set[str]:
        seen: set[str] = set()
        for i, value in enumerate(train.column(self.data.columns.label)):
            seen.update(self._names(train, i, value))
        return seen

    def labels_from(self, seen: set[str]) -> list[str]:
        return declared_or_seen(self.data.labels, sorted(seen))

    def _names(self, rows: Rows, index: int, value: Any) -> list[str]:
        column = self.data.columns.label
        if self.data.multi_label:
            if not isinstance(value, list):
                raise bad_row(rows, index, column, f"data.multi_label is true: expected a list of labels, got {value!r}")
            values = value
        else:
            if isinstance(value, list) or value is None:
                raise bad_row(rows, index, column, f"expected one label, got {value!r}"
                              + (" (set data.multi_label=true for lists)" if isinstance(value, list) else ""))
            values = [value]
        names = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        if self.labels is not None:
            unknown = [n for n in names if n not in self.labels]
            if unknown:
                raise bad_row(rows, index, column, f"label {unknown[0]!r} is not one of data.labels "
                              f"({', '.join(self.labels)})")
        return names

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        cols, text = self.data.columns, self.text_column(rows.kind)
        texts = [text_value(rows, i, text, v) for i, v in enumerate(rows.column(text))]
        pairs = ([text_value(rows, i, cols.text_pair, v) for i, v in enumerate(rows.column(cols.text_pair))]
                 if cols.text_pair else None)
        encoded = self.tokenizer(texts, pairs, truncation=self.data.truncation,
                                 max_length=self.data.seq_len if self.data.truncation else None)
        for i, ids in enumerate(encoded["input_ids"]):
            check_length(rows, i, text, len(ids), self.data.seq_len, self.data.truncation)
        index = {name: k for k, name in enumerate(self.labels)}
        names = [self._names(rows, i, v) for i, v in enumerate(rows.column(cols.label))]
        if self.data.multi_label:
            label = np.zeros((len(rows), len(self.labels)), dtype=np.float32)
            for i, row in enumerate(names):
                label[i, [index[n] for n in row]] = 1.0
        else:
            label = np.array([index[row[0]] for row in names], dtype=np.int64)
        columns = {"input_ids": Ragged.from_rows(encoded["input_ids"]), "label": label}
        if pairs is not None and "token_type_ids" in encoded:
            columns["token_type_ids"] = Ragged.from_rows(encoded["token_type_ids"], dtype=np.int8)
        return columns

    def head_config(self):
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {name: i for i, name in enumerate(self.labels)},
                "problem_type": "multi_label_classification" if self.data.multi_label else "single_label_classification",
                "pad_token_id": self.tokenizer.pad_token_id}

    def train_batch(self, columns, indices, positions):
        features = []
        for i in indices:
            feature = {"input_ids": columns["input_ids"][int(i)].tolist(), "labels": columns["label"][int(i)].tolist()}
            if "token_type_ids" in columns:
                feature["token_type_ids"] = columns["token_type_ids"][int(i)].tolist()
            features.append(feature)
        batch = dict(DataCollatorWithPadding(self.tokenizer, return_tensors="pt")(features))
        if self.data.multi_label:
            batch["labels"] = batch["labels"].float()
        return batch

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        logits, labels = output.logits.float(), batch["labels"]
        predicted = (logits > 0).long() if self.data.multi_label else logits.argmax(-1)
        rows = [(int(i), (p.tolist(), g.long().tolist())) for i, p, g in zip(indices, predicted, labels)]
        return EvalOutput({"loss_sum": output.loss.item() * len(indices), "loss_count": len(indices)}, rows)

    def metrics(self, sums, predictions, columns):
        predicted = [p for _, (p, _) in predictions]
        gold = [g for _, (_, g) in predictions]
        scores = classification_scores(gold, predicted, len(self.labels), self.data.multi_label)
        return {**loss_metrics(sums, perplexity=False), **scores}
