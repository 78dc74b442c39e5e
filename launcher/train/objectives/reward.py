"""reward: a reward model on the preference rows of dpo (pairs.py): a sequence classifier with one output
(AutoModelForSequenceClassification, num_labels=1) scores prompt + answer at its last token, trained with
the pairwise Bradley-Terry loss -log sigmoid(score(chosen) - score(rejected)). The export is a transformers
sequence classifier with one label; pairwise accuracy counts the held-out pairs it scores the right way
round (an exact tie counts one half).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from launcher.train.objectives.base import EvalOutput, Objective, ensure_eos, loss_metrics
from launcher.train.objectives.pairs import PairEncoder, pair_batch, pair_lengths


class RewardModel(Objective):
    name = "reward"
    auto_class = "AutoModelForSequenceClassification"
    per_example = True  # a step's loss is the mean over pairs

    def __init__(self, recipe, tokenizer, labels=None):
        super().__init__(recipe, tokenizer, labels)
        self.pairs = PairEncoder(self.tokenizer, self.data, end_with_eos=False)

    def adapt_tokenizer(self, tokenizer):
        return ensure_eos(tokenizer)  # a pad token: the classifier finds each row's last real token by it

    def needed_columns(self, kind):
        return self.pairs.needed_columns()

    def encode(self, rows, split):
        return {name: column for name, column in self.pairs.encode(rows).items() if name.endswith("_ids")}

    def size(self, columns):
        return len(columns["chosen_ids"])

    def lengths(self, columns, indices):
        return pair_lengths(columns, indices)

    def head_config(self):
        return {"num_labels": 1, "id2label": {0: "reward"}, "label2id": {"reward": 0},
                "pad_token_id": self.tokenizer.pad_token_id}

    def train_batch(self, columns, indices, positions):
        return pair_batch(columns, indices, self.tokenizer.pad_token_id, with_labels=False)

    def loss_items(self, batch):
        return len(batch["input_ids"]) // 2

    def _scores(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        scores = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0].float()
        return scores.chunk(2)

    def loss(self, model, batch):
        chosen, rejected = self._scores(model, batch)
        return -F.logsigmoid(chosen - rejected).mean()

    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        chosen, rejected = self._scores(model, batch)
        losses = -F.logsigmoid(chosen - rejected)
        wins = (chosen > rejected).float() + 0.5 * (chosen == rejected).float()
        return EvalOutput({"loss_sum": losses.sum().item(), "loss_count": len(indices), "wins": wins.sum().item()})

    def metrics(self, sums, predictions, columns):
        return {**loss_metrics(sums, perplexity=False),
                "pairwise_accuracy": sums.get("wins", 0.0) / max(sums.get("loss_count", 0.0), 1.0)}
