"""The objectives and what each reports, as plain data the schema and the CLI check against (no torch).

The worker-side implementations live in launcher/train/objectives/; this table is the objectives a
recipe may name, the metrics it may name in `eval.metric` and `early_stopping.metric`, and which way
each metric is better.
"""

from __future__ import annotations

METRICS: dict[str, tuple[str, ...]] = {
    "clm": ("loss", "perplexity"),
    "mlm": ("loss", "perplexity", "accuracy"),
    "sft": ("loss", "perplexity", "exact_match"),
    "seq_cls": ("loss", "accuracy", "precision_micro", "recall_micro", "f1_micro",
                "precision_macro", "recall_macro", "f1_macro"),
    "token_cls": ("loss", "accuracy", "precision", "recall", "f1"),
    "qa": ("loss", "exact_match", "f1"),
    "seq2seq": ("loss", "bleu", "rouge1", "rouge2", "rougeL"),
    "dpo": ("loss", "reward_accuracy", "reward_margin", "chosen_logp", "rejected_logp"),
    "reward": ("loss", "pairwise_accuracy"),
}

OBJECTIVE_NAMES = tuple(METRICS)

LOWER_IS_BETTER = frozenset({"loss", "perplexity"})


def metric_mode(metric: str) -> str:
    """'min' for losses, 'max' for scores."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def check_metric(objective: str, metric: str, key: str) -> None:
    valid = METRICS[objective]
    if metric not in valid:
        raise ValueError(f"{key}={metric!r} is not a metric of objective {objective}; valid: {', '.join(valid)}")
