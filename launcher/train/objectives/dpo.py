"""dpo: Direct Preference Optimization on prompt/chosen/rejected rows (launcher/train/objectives/pairs.py).

The policy's log-prob of each answer (summed over the answer's tokens; IPO: their mean, as TRL) is
compared to the reference model's (reference.py: the adapter-disabled policy for LoRA/QLoRA, else the
starting model's, precomputed once). With h = (policy - reference)(chosen) - (policy - reference)(rejected):
- sigmoid (DPO): -(1 - s) log sigmoid(beta h) - s log sigmoid(-beta h), s = dpo.label_smoothing;
- ipo (IPO): (h - 1 / (2 beta))^2.
The implicit rewards are beta (policy - reference) of each answer; reward accuracy counts the pairs whose
chosen reward is higher (an exact tie, as at the start with a fresh adapter, counts one half), the
reward margin is their mean difference. A step's loss is the mean over the pairs of the global batch.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from launcher.train.objectives.base import IGNORE, EvalOutput, Objective, ensure_eos, loss_metrics
from launcher.train.objectives.pairs import PairEncoder, pair_batch, pair_lengths
from launcher.train.objectives.reference import PrecomputedReference, adapter_disabled


def dpo_losses(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
               ref_rejected: torch.Tensor, beta: float, loss_type: str = "sigmoid",
               label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair losses and reward margins (beta h) from the four log-probs of each pair."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    if loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    return losses, beta * h.detach()


def answer_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], mean: bool) -> torch.Tensor:
    """The log-prob of each row's labelled tokens, summed (or averaged), from one forward."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    logits = logits[:, :-1].float()
    # the labels' logits less the log-normaliser: no (rows, length, vocab) tensor of log-probs beside the logits
    picked = (logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)) * mask
    total = picked.sum(-1)
    return total / mask.sum(-1).clamp(min=1) if mean else total


class DirectPreference(Objective):
    name = "dpo"
    per_example = True  # a step's loss is the mean over pairs

    def __init__(self, recipe, tokenizer, labels=None):
        super().__init__(recipe, tokenizer, labels)
        self.spec = recipe.dpo
        self.pairs = PairEncoder(self.tokenizer, self.data, end_with_eos=True)
        reference = self.spec.reference
        if reference == "auto":
            reference = "adapter" if recipe.method.type in ("lora", "qlora") else "precomputed"
        self.precomputed = (PrecomputedReference(recipe, self._batch, self._sums) if reference == "precomputed"
                            else None)

    def adapt_tokenizer(self, tokenizer):
        return ensure_eos(tokenizer)

    def needed_columns(self, kind):
        return self.pairs.needed_columns()

    def encode(self, rows, split):
        return self.pairs.encode(rows)

    def size(self, columns):
        return len(columns["chosen_ids"])

    def lengths(self, columns, indices):
        return pair_lengths(columns, indices)

    def _batch(self, columns, indices) -> dict[str, torch.Tensor]:
        return pair_batch(columns, indices, self.tokenizer.pad_token_id, with_labels=True)

    def train_batch(self, columns, indices, positions):
        return {**self._batch(columns, indices), "pairs": torch.as_tensor(np.asarray(indices), dtype=torch.int64),
                "split": "train"}

    def eval_batch(self, columns, indices):
        return {**self.train_batch(columns, indices, indices), "split": "eval"}

    def loss_items(self, batch):
        return len(batch["pairs"])

    # ---- log-probs ----
    def _sums(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probs of the chosen and the rejected answers (what the precomputed reference keeps)."""
        logps = answer_logps(model, batch, mean=False)
        return logps.chunk(2)

    def _logps(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen and rejected log-probs as the loss takes them: summed, or per-token means for IPO."""
        logps = answer_logps(model, batch, mean=self.spec.loss == "ipo")
        return logps.chunk(2)

    def resumed(self, step: int) -> None:
        if self.precomputed is not None:
            self.precomputed.resumed_at = step

    def _reference(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.precomputed is None:
            inner, disabled = adapter_disabled(model)
            with torch.no_grad(), disabled:
                return self._logps(inner, batch)
        chosen, rejected = self.precomputed.lookup(model, batch["split"], batch["pairs"])
        if self.spec.loss == "ipo":
            counts = (batch["labels"][:, 1:] != IGNORE).sum(-1).clamp(min=1).chunk(2)
            return chosen / counts[0], rejected / counts[1]
        return chosen, rejected

    def _terms(self, model, batch) -> dict[str, torch.Tensor]:
        ref_chosen, ref_rejected = self._reference(model, batch)  # first: a precomputed one may need the start
        chosen, rejected = self._logps(model, batch)
        losses, margins = dpo_losses(chosen, rejected, ref_chosen.to(chosen.dtype), ref_rejected.to(chosen.dtype),
                                     self.spec.beta, self.spec.loss, self.spec.label_smoothing)
        return {"losses": losses, "margins": margins, "chosen": chosen.detach(), "rejected": rejected.detach()}

    def loss(self, model, batch):
        return self._terms(model, batch)["losses"].mean()

    # ---- evaluation ----
    def eval_step(self, model, generator, batch, indices, columns) -> EvalOutput:
        terms = self._terms(model, batch)
        margins = terms["margins"]
        wins = (margins > 0).float() + 0.5 * (margins == 0).float()
        sums = {"loss_sum": terms["losses"].sum().item(), "loss_count": len(indices), "wins": wins.sum().item(),
                "margin_sum": margins.sum().item(), "chosen_sum": terms["chosen"].sum().item(),
                "rejected_sum": terms["rejected"].sum().item()}
        return EvalOutput(sums)

    def metrics(self, sums, predictions, columns) -> dict[str, float]:
        count = max(sums.get("loss_count", 0.0), 1.0)
        return {**loss_metrics(sums, perplexity=False), "reward_accuracy": sums.get("wins", 0.0) / count,
                "reward_margin": sums.get("margin_sum", 0.0) / count,
                "chosen_logp": sums.get("chosen_sum", 0.0) / count,
                "rejected_logp": sums.get("rejected_sum", 0.0) / count}


__all__ = ["DirectPreference", "answer_logps", "dpo_losses"]
