"""Preference rows -> the two answers to the same prompt as token ids: the data of dpo and reward.

A row holds a prompt and two answers, `chosen` (preferred) and `rejected` (column names:
data.columns.prompt/chosen/rejected). Text rows are joined as they are: the prompt's tokens (with the
tokenizer's BOS if it adds one), then the answer's, then EOS where asked (dpo, so the policy learns to
stop). Chat rows (a prompt of {role, content} messages; answers as text or assistant messages) are
rendered by the chat template (data.chat_template, data.chat_template_file) as sft renders them: the
labels cover the answer's assistant turns, each ending as the template ends a turn.

A pair whose answers are equal teaches nothing and is refused, with the count and the first row.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from launcher.data.rows import Rows, bad_row, text_value
from launcher.data.store import Ragged
from launcher.errors import UserError
from launcher.train.objectives.base import IGNORE, check_length, pad_rows
from launcher.train.objectives.chat import check_messages, segments, template_for, turn_end_id

SIDES = ("chosen", "rejected")


class PairEncoder:
    def __init__(self, tokenizer, data, end_with_eos: bool):
        self.tokenizer, self.data, self.end_with_eos = tokenizer, data, end_with_eos

    def needed_columns(self) -> dict[str, str]:
        cols = self.data.columns
        return {cols.prompt: "data.columns.prompt", cols.chosen: "data.columns.chosen",
                cols.rejected: "data.columns.rejected"}

    @cached_property
    def template(self) -> str:
        return template_for(self.tokenizer, self.data.chat_template, self.data.chat_template_file)

    @cached_property
    def stop_ids(self) -> set[int]:
        return {self.tokenizer.eos_token_id, turn_end_id(self.tokenizer, self.template)} - {None}

    def encode(self, rows: Rows) -> dict[str, Any]:
        cols = self.data.columns
        prompts, answers = rows.column(cols.prompt), {side: rows.column(getattr(cols, side)) for side in SIDES}
        out: dict[str, list] = {f"{side}_{part}": [] for side in SIDES for part in ("ids", "labels")}
        same = []
        for i, prompt in enumerate(prompts):
            pair = {side: self._answer(rows, i, getattr(cols, side), answers[side][i]) for side in SIDES}
            if pair["chosen"] == pair["rejected"]:
                same.append(i)
            for side in SIDES:
                ids, labels = self._tokens(rows, i, prompt, pair[side], getattr(cols, side))
                out[f"{side}_ids"].append(ids)
                out[f"{side}_labels"].append(labels)
        if same:
            raise UserError(f"{rows.where(same[0])}: columns '{cols.chosen}' and '{cols.rejected}' are the same "
                            f"({len(same)} such row{'s' if len(same) > 1 else ''} in {rows.sources[0][0]}); a pair "
                            "needs two different answers: fix or drop those rows")
        return {name: Ragged.from_rows(values) for name, values in out.items()}

    def _answer(self, rows: Rows, i: int, column: str, value: Any) -> str | list[dict[str, str]]:
        if isinstance(value, list):
            problem = check_messages(value)
            if problem is None and any(m["role"] == "assistant" and not m["content"].strip() for m in value):
                problem = "an assistant message is empty"
            if problem:
                raise bad_row(rows, i, column, problem)
            return [{"role": m["role"], "content": m["content"]} for m in value]
        return text_value(rows, i, column, value)

    def _tokens(self, rows: Rows, i: int, prompt: Any, answer, column: str) -> tuple[list[int], list[int]]:
        """ids and labels (IGNORE outside the answer) of the prompt followed by one answer."""
        if isinstance(prompt, list) or isinstance(answer, list):
            turns = answer if isinstance(answer, list) else [{"role": "assistant", "content": answer}]
            lead = next(k for k, m in enumerate(turns) if m["role"] == "assistant")
            if lead:
                prompt, turns = turns[:lead], turns[lead:]
            elif not isinstance(prompt, list):
                prompt = [{"role": "user", "content": text_value(rows, i, self.data.columns.prompt, prompt)}]
            ids, labels, prompt_len = self._chat(rows, i, prompt, turns)
        else:
            text = text_value(rows, i, self.data.columns.prompt, prompt)
            prompt_ids = self.tokenizer(text)["input_ids"]
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            answer_ids += [self.tokenizer.eos_token_id] if self.end_with_eos else []
            ids, labels, prompt_len = prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids, len(prompt_ids)
        limit = self.data.seq_len
        longest = self.data.columns.prompt if prompt_len >= limit else column
        check_length(rows, i, longest, len(ids), limit, self.data.truncation)
        if all(label == IGNORE for label in labels[:limit]):
            raise bad_row(rows, i, self.data.columns.prompt, f"{prompt_len} tokens leave no room for the answer in "
                          f"data.seq_len={limit}; raise data.seq_len")
        return ids[:limit], labels[:limit]

    def _chat(self, rows: Rows, i: int, prompt: list, turns: list[dict[str, str]]) -> tuple[list[int], list[int], int]:
        problem = check_messages(prompt + [{"role": "assistant", "content": "-"}])
        if problem:
            raise bad_row(rows, i, self.data.columns.prompt, problem)
        earlier = sum(m["role"] == "assistant" for m in prompt)  # replies inside the prompt are not trained
        ids, labels, prompt_len, seen = [], [], None, 0
        for text, reply in segments(self.tokenizer, self.template, prompt + turns):
            piece = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            trained = reply and (seen := seen + 1) > earlier
            if trained:
                prompt_len = len(ids) if prompt_len is None else prompt_len
                if self.end_with_eos and self.stop_ids.isdisjoint(piece):
                    piece = piece + [self.tokenizer.eos_token_id]
            ids += piece
            labels += piece if trained else [IGNORE] * len(piece)
        return ids, labels, prompt_len or 0


def pair_batch(columns: dict[str, Any], indices: np.ndarray, pad: int, with_labels: bool) -> dict[str, torch.Tensor]:
    """The chosen answers of `indices`, then their rejected ones, padded on the right into one batch."""
    rows = [np.asarray(columns[f"{side}_ids"][int(i)], dtype=np.int64) for side in SIDES for i in indices]
    batch = {"input_ids": pad_rows(rows, pad),
             "attention_mask": pad_rows([np.ones(len(r), dtype=np.int64) for r in rows], 0)}
    if with_labels:
        batch["labels"] = pad_rows([np.asarray(columns[f"{side}_labels"][int(i)], dtype=np.int64)
                                    for side in SIDES for i in indices], IGNORE)
    return batch


def pair_lengths(columns: dict[str, Any], indices: np.ndarray) -> np.ndarray:
    """Tokens a pair puts in a padded batch: two rows of its longer answer."""
    return 2 * np.maximum(columns["chosen_ids"].lengths()[indices], columns["rejected_ids"].lengths()[indices])
