"""qa: extractive question answering. A context longer than the window is split into windows that
overlap by data.stride tokens; each window learns the answer's start/end token, or the first token
(CLS) when the answer is not inside it. Eval takes, per example, the best-scoring span over all its
windows and maps it back to the context's characters (SQuAD exact match and F1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import DataCollatorWithPadding

from launcher.errors import UserError
from launcher.train.evaluation.scores import squad_scores
from launcher.train.objectives.base import EvalOutput, Objective, loss_metrics
from launcher.data.rows import Rows, bad_row, text_value
from launcher.data.store import Ragged

MAX_ANSWER_TOKENS = 30
TOP_K = 20


class QuestionAnswering(Objective):
    name = "qa"
    auto_class = "AutoModelForQuestionAnswering"
    per_example = True
    row_numbers = ("example",)

    def needed_columns(self, kind):
        cols = self.data.columns
        return {cols.question: "data.columns.question", cols.context: "data.columns.context",
                cols.answers: "data.columns.answers"}

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        cols, data = self.data.columns, self.data
        if not self.tokenizer.is_fast:
            raise UserError("objective qa needs a fast (tokenizers) tokenizer for character offsets")
        questions = [text_value(rows, i, cols.question, v).strip() for i, v in enumerate(rows.column(cols.question))]
        contexts = [text_value(rows, i, cols.context, v) for i, v in enumerate(rows.column(cols.context))]
        answers = [self._answers(rows, i, a, contexts[i]) for i, a in enumerate(rows.column(cols.answers))]
        if data.stride >= data.seq_len // 2:
            raise UserError(f"data.stride={data.stride} must be less than half of data.seq_len={data.seq_len}")
        try:
            enc = self.tokenizer(questions, contexts, truncation="only_second", max_length=data.seq_len,
                                 stride=data.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        except Exception as exc:  # the tokenizer refuses a question that leaves no room for the context
            raise UserError(f"data.seq_len={data.seq_len}: a question leaves no room for its context ({exc})") from None
        starts, ends, example, offsets = [], [], [], []
        for f, ids in enumerate(enc["input_ids"]):
            k = enc["overflow_to_sample_mapping"][f]
            sequence = enc.sequence_ids(f)
            context_offsets = [tuple(o) if s == 1 else (-1, -1) for o, s in zip(enc["offset_mapping"][f], sequence)]
            start, end = _answer_tokens(context_offsets, answers[k])
            starts.append(start), ends.append(end), example.append(k)
            offsets.append([x for pair in context_offsets for x in pair])
        columns = {"input_ids": Ragged.from_rows(enc["input_ids"]), "start_positions": np.array(starts, np.int64),
                   "end_positions": np.array(ends, np.int64), "example": np.array(example, np.int64)}
        if "token_type_ids" in enc:
            columns["token_type_ids"] = Ragged.from_rows(enc["token_type_ids"], dtype=np.int8)
        if split != "train":
            columns["offsets"] = Ragged.from_rows(offsets)
            columns["examples"] = [{"context": c, "answers": [t for t, _ in a]} for c, a in zip(contexts, answers)]
        return columns

    def _answers(self, rows: Rows, index: int, value: Any, context: str) -> list[tuple[str, int]]:
        column = self.data.columns.answers
        if not isinstance(value, dict) or not isinstance(value.get("text"), list) \
                or not isinstance(value.get("answer_start"), list) or len(value["text"]) != len(value["answer_start"]):
            raise bad_row(rows, index, column, "expected {text: [...], answer_start: [...]} of equal length")
        out = []
        for text, start in zip(value["text"], value["answer_start"]):
            if not isinstance(start, int) or context[start:start + len(text)] != text:
                raise bad_row(rows, index, column, f"answer_start {start!r} does not point at {text!r} in the context")
            out.append((text, start))
        return out

    def train_batch(self, columns, indices, positions):
        features = []
        for i in indices:
            i = int(i)
            feature = {"input_ids": columns["input_ids"][i].tolist(),
                       "start_positions": int(columns["start_positions"][i]),
                       "end_positions": int(columns["end_positions"][i])}
            if "token_type_ids" in columns:
                feature["token_type_ids"] = columns["token_type_ids"][i].tolist()
            features.append(feature)
        return dict(DataCollatorWithPadding(self.tokenizer, return_tensors="pt")(features))

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        starts, ends = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
        rows = []
        for row, i in enumerate(indices):
            pairs = np.asarray(columns["offsets"][int(i)]).reshape(-1, 2)
            span = best_span(starts[row, :len(pairs)], ends[row, :len(pairs)], pairs)
            rows.append((int(columns["example"][int(i)]), span))
        return EvalOutput({"loss_sum": output.loss.item() * len(indices), "loss_count": len(indices)}, rows)

    def metrics(self, sums, predictions, columns):
        examples = columns["examples"]
        best: dict[int, tuple[float, int, int]] = {}
        for k, span in predictions:
            if span is not None and (k not in best or span[0] > best[k][0]):
                best[k] = span
        texts = [examples[k]["context"][best[k][1]:best[k][2]] if k in best else "" for k in range(len(examples))]
        return {**loss_metrics(sums, perplexity=False),
                **squad_scores(texts, [e["answers"] for e in examples])}


def _answer_tokens(offsets: list[tuple[int, int]], answers: list[tuple[str, int]]) -> tuple[int, int]:
    """Token span of the first answer if this window holds all of it, else (0, 0): the CLS token."""
    if not answers:
        return 0, 0
    text, start = answers[0]
    end = start + len(text)
    inside = [t for t, (a, b) in enumerate(offsets) if a >= 0]
    if not inside or offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return 0, 0
    first = next(t for t in inside if offsets[t][1] > start)
    last = next(t for t in reversed(inside) if offsets[t][0] < end)
    return first, last


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray) -> tuple[float, int, int] | None:
    """(score, first char, end char) of the best context span up to MAX_ANSWER_TOKENS, or None."""
    context = offsets[:, 0] >= 0
    if not context.any():
        return None
    candidates = np.flatnonzero(context)
    top_starts = candidates[np.argsort(start_logits[candidates])[::-1][:TOP_K]]
    top_ends = candidates[np.argsort(end_logits[candidates])[::-1][:TOP_K]]
    best = None
    for s in top_starts:
        for e in top_ends:
            if s <= e < s + MAX_ANSWER_TOKENS:
                score = float(start_logits[s] + end_logits[e])
                if best is None or score > best[0]:
                    best = (score, int(offsets[s, 0]), int(offsets[e, 1]))
    return best
