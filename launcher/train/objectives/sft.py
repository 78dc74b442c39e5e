"""sft: instruction tuning on alpaca (instruction/input/output) or chat (messages) rows.

The loss covers the assistant replies only, each ending exactly as the template ends the turn, so the
model learns to stop:
- a template that closes a turn with a special token (`{reply}</s>\n`, ChatML's `{reply}<|im_end|>\n`
  when the tokenizer has `<|im_end|>` as a special token, Llama 3's `<|eot_id|>`) is followed as it
  is: no EOS is added, the labels cover that token and whatever the template puts after it;
- a template that puts no special token after the reply (plain, or ChatML with a tokenizer that spells
  `<|im_end|>` as ordinary pieces) gets one EOS appended, covered by the labels.
Generation in eval stops on EOS and on the template's turn-end tokens (`<|im_end|>`), the token the
model was trained to emit.
With data.packing a micro batch is one padding-free row (transformers' DataCollatorWithFlattening):
position ids restart at every example and the example boundaries go along (cu_seq_lens), so attention
runs per example (launcher/train/packed_attention.py) and no token attends across a boundary. Eval
scores the loss and the exact match of greedy generations for the last reply of each held-out conversation.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

from launcher.errors import UserError
from launcher.train.evaluation.scores import exact_match
from launcher.train.objectives.base import ensure_eos, IGNORE, EvalOutput, Objective, check_length, loss_metrics, pad_rows
from launcher.train.objectives.chat import (alpaca_messages, check_messages, segments, sharegpt_messages, template_for,
                                            turn_end_id)
from launcher.data.rows import Rows, bad_row, text_value
from launcher.data.store import Ragged


class InstructionTuning(Objective):
    name = "sft"

    def adapt_tokenizer(self, tokenizer):
        return ensure_eos(tokenizer)
    generate_kwargs: dict[str, Any] = {}

    def needed_columns(self, kind):
        cols = self.data.columns
        if self.data.sft_format == "chat":
            return {cols.messages: "data.columns.messages"}
        if self.data.sft_format == "alpaca":
            return {cols.instruction: "data.columns.instruction", cols.output: "data.columns.output"}
        return {}  # auto: decided from the columns in encode

    def optional_columns(self) -> tuple[str, ...]:
        cols = self.data.columns
        return (cols.messages, cols.conversations, cols.instruction, cols.input, cols.output)

    def _format(self, rows: Rows) -> str:
        cols, names = self.data.columns, rows.column_names
        if self.data.sft_format != "auto":
            return self.data.sft_format
        if cols.messages in names:
            return "chat"
        if cols.conversations in names:
            return "sharegpt"
        if cols.instruction in names and cols.output in names:
            return "alpaca"
        file = rows.sources[0][0]
        raise UserError(f"{file}: rows have neither a '{cols.messages}' column (chat), '{cols.conversations}' "
                        f"(ShareGPT) nor '{cols.instruction}' and '{cols.output}' (alpaca) (columns: {', '.join(names)});"
                        " set data.columns.*")

    def conversations(self, rows: Rows) -> list[list[dict[str, str]]]:
        cols = self.data.columns
        if self._format(rows) in ("chat", "sharegpt"):
            sharegpt = self._format(rows) == "sharegpt"
            column = cols.conversations if sharegpt else cols.messages
            out = []
            for i, messages in enumerate(rows.column(column)):
                messages = sharegpt_messages(messages) if sharegpt else messages
                problem = messages if isinstance(messages, str) else check_messages(messages)
                if problem:
                    raise bad_row(rows, i, column, problem)
                out.append([{"role": m["role"], "content": m["content"]} for m in messages])
            return out
        extra = rows.column(cols.input) if cols.input in rows.column_names else [None] * len(rows)
        return [alpaca_messages(text_value(rows, i, cols.instruction, ins), extra[i] or None,
                                text_value(rows, i, cols.output, out, allow_empty=True), self.data.alpaca_separator)
                for i, (ins, out) in enumerate(zip(rows.column(cols.instruction), rows.column(cols.output)))]

    @cached_property
    def template(self) -> str:
        return template_for(self.tokenizer, self.data.chat_template, self.data.chat_template_file)

    @cached_property
    def stop_ids(self) -> list[int]:
        """What ends a reply: EOS, and the special token the template closes a turn with when it has one."""
        return sorted({self.tokenizer.eos_token_id, turn_end_id(self.tokenizer, self.template)} - {None})

    def encode(self, rows: Rows, split: str) -> dict[str, Any]:
        cols, layout = self.data.columns, self._format(rows)
        column = {"chat": cols.messages, "sharegpt": cols.conversations}.get(layout, cols.output)
        ids, labels, prompts, targets = [], [], [], []
        parts = [segments(self.tokenizer, self.template, conversation) for conversation in self.conversations(rows)]
        # every segment of the batch in one tokenizer call: the same ids as one call each, a third of the time
        texts = [text for row in parts for text, _ in row]
        pieces = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        for i, row in enumerate(parts):
            row_ids, row_labels, prompt_len, target = self._tokens([(next(pieces), trainable) for _, trainable in row])
            check_length(rows, i, column, len(row_ids), self.data.seq_len, self.data.truncation)
            ids.append(row_ids[:self.data.seq_len])
            labels.append(row_labels[:self.data.seq_len])
            prompts.append(row_ids[:min(prompt_len, self.data.seq_len)])
            targets.append(target)
        columns = {"input_ids": Ragged.from_rows(ids), "labels": Ragged.from_rows(labels)}
        if split != "train":
            columns.update(prompt_ids=Ragged.from_rows(prompts), target_ids=Ragged.from_rows(targets))
        return columns

    def _tokens(self, parts: list[tuple[list[int], bool]]) -> tuple[list[int], list[int], int, list[int]]:
        """ids, labels, where the last reply starts, and the last reply's ids (without an added EOS), from the
        conversation's segments as (ids, trainable).

        A reply that holds a stop token (EOS, the template's turn end) anywhere ends as the template ends
        it (`</s>\n` stays `</s>\n`); any other gets one EOS appended.
        """
        stops = set(self.stop_ids)
        ids, labels, prompt_len, target = [], [], 0, []
        for piece, trainable in parts:
            if trainable:
                prompt_len, target = len(ids), piece
                if stops.isdisjoint(piece):
                    piece = piece + [self.tokenizer.eos_token_id]
            ids += piece
            labels += piece if trainable else [IGNORE] * len(piece)
        return ids, labels, prompt_len, target

    def train_batch(self, columns, indices, positions):
        features = [{"input_ids": columns["input_ids"][int(i)].tolist(), "labels": columns["labels"][int(i)].tolist()}
                    for i in indices]
        if self.data.packing:
            # transformers builds the per-example causal mask from the restarting position ids only when no KV
            # cache is in play (use_cache=False); the boundaries (cu_seq_lens) let packed_attention skip its work
            flat = DataCollatorWithFlattening(return_tensors="pt", return_flash_attn_kwargs=True)(features)
            return {**flat, "use_cache": False}
        return dict(DataCollatorForSeq2Seq(self.tokenizer, label_pad_token_id=IGNORE, return_tensors="pt")(features))

    def eval_batch(self, columns, indices):
        return self.train_batch(columns, indices, np.asarray(indices))

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        output = model(**batch)
        labels = batch["labels"]
        count = int((labels[:, 1:] != IGNORE).sum())
        prompts = [np.asarray(columns["prompt_ids"][int(i)], dtype=np.int64) for i in indices]
        pad = self.tokenizer.pad_token_id
        input_ids = pad_rows(prompts, pad, side="left")
        attention = pad_rows([np.ones(len(p), dtype=np.int64) for p in prompts], 0, side="left")
        device = labels.device
        generated = generator.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), do_sample=False, num_beams=1,
            max_new_tokens=self.recipe.eval.max_new_tokens, pad_token_id=pad, eos_token_id=self.stop_ids,
            **self.generate_kwargs,
        )[:, input_ids.shape[1]:]
        decode = self.tokenizer.batch_decode
        answers = decode(generated, skip_special_tokens=True)
        references = decode([columns["target_ids"][int(i)].tolist() for i in indices], skip_special_tokens=True)
        rows = [(int(i), (a.strip(), r.strip())) for i, a, r in zip(indices, answers, references)]
        return EvalOutput({"loss_sum": output.loss.item() * count, "loss_count": count}, rows)

    def metrics(self, sums, predictions, columns):
        answers = [a for _, (a, _) in predictions]
        references = [r for _, (_, r) in predictions]
        return {**loss_metrics(sums), "exact_match": exact_match(answers, references)}
