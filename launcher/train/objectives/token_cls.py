"""token_cls: one tag per word (NER with BIO tags); each word's tag goes on its first sub-word token.

The other pieces of a word and the special tokens get the ignore label, so loss and metrics are per
word; entity F1 is seqeval's (an entity counts only when its type and both ends are right).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import DataCollatorForTokenClassification

from launcher.train.evaluation.scores import entity_scores
from launcher.train.objectives.base import IGNORE, EvalOutput, Objective, check_length, declared_or_seen, loss_metrics
from launcher.data.rows import Rows, bad_row
from launcher.data.store import Ragged


class TokenClassification(Objective):
    name = "token_cls"
    auto_class = "AutoModelForTokenClassification"
    shifted_labels = False
    has_labels = True

    def needed_columns(self, kind):
        cols = self.data.columns
        return {cols.tokens: "data.columns.tokens", cols.tags: "data.columns.tags"}

    def seen_labels(self, train: Rows) -> set[str]:
        return {tag for i, tags in enumerate(train.column(self.data.columns.tags)) for tag in self._tags(train, i, tags)}

    def labels_from(self, seen: set[str]) -> list[str]:
        labels = declared_or_seen(self.data.labels, sorted(seen))
        return (["O"] + [t for t in labels if t != "O"]) if "O" in labels else labels

    def _tags(self, rows: Rows, index: int, tags: Any) -> list[str]:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise bad_row(rows, index, self.data.columns.tags, f"expected a list of tag names, got {tags!r}")
        if self.labels is not None:
            unknown = [t for t in tags if t not in self.labels]
            if unknown:
                raise bad_row(rows, index, self.data.columns.tags,
                              f"tag {unknown[0]!r} is not one of data.labels ({', '.join(self.labels)})")
        return tags

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        cols = self.data.columns
        words_column, tags_column = rows.column(cols.tokens), rows.column(cols.tags)
        for i, words in enumerate(words_column):
            if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
                raise bad_row(rows, i, cols.tokens, f"expected a non-empty list of words, got {words!r}")
            if not isinstance(tags_column[i], list) or len(tags_column[i]) != len(words):
                raise bad_row(rows, i, cols.tags, f"{len(tags_column[i]) if isinstance(tags_column[i], list) else 'no'} "
                              f"tags for {len(words)} words; give one tag per word")
        encoded = self.tokenizer(words_column, is_split_into_words=True, truncation=self.data.truncation,
                                 max_length=self.data.seq_len if self.data.truncation else None)
        index = {tag: k for k, tag in enumerate(self.labels)}
        labels = []
        for i in range(len(rows)):
            check_length(rows, i, cols.tokens, len(encoded["input_ids"][i]), self.data.seq_len, self.data.truncation)
            tags = self._tags(rows, i, tags_column[i])
            row, previous = [], None
            for word in encoded.word_ids(i):
                row.append(IGNORE if word is None or word == previous else index[tags[word]])
                previous = word
            labels.append(row)
        return {"input_ids": Ragged.from_rows(encoded["input_ids"]), "labels": Ragged.from_rows(labels, np.int16)}

    def head_config(self):
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {name: i for i, name in enumerate(self.labels)}, "pad_token_id": self.tokenizer.pad_token_id}

    def train_batch(self, columns, indices, positions):
        features = [{"input_ids": columns["input_ids"][int(i)].tolist(), "labels": columns["labels"][int(i)].tolist()}
                    for i in indices]
        return dict(DataCollatorForTokenClassification(self.tokenizer, return_tensors="pt")(features))

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        labels, predicted = batch["labels"], output.logits.argmax(-1)
        rows = []
        for i, gold_row, pred_row in zip(indices, labels, predicted):
            keep = gold_row != IGNORE
            rows.append((int(i), (pred_row[keep].tolist(), gold_row[keep].tolist())))
        count = self.loss_items(batch)
        return EvalOutput({"loss_sum": output.loss.item() * count, "loss_count": count}, rows)

    def metrics(self, sums, predictions, columns):
        names = self.labels
        predicted = [[names[t] for t in p] for _, (p, _) in predictions]
        gold = [[names[t] for t in g] for _, (_, g) in predictions]
        return {**loss_metrics(sums, perplexity=False), **entity_scores(gold, predicted)}
