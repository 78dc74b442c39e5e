"""What each objective reports and needs, as plain data the schema checks against (no torch).

The worker-side implementations live in launcher/train/objectives/; this table is what a recipe may
name in `eval.metric` and `early_stopping.metric`, and which way each metric is better.
"""

from __future__ import annotations

OBJECTIVES: dict[str, str] = {
    "clm": "causal language modelling (pretraining or continued pretraining on text)",
    "mlm": "masked language modelling, BERT-style 15% masking (80/10/10), optional whole-word masking",
    "sft": "instruction tuning on alpaca or chat rows; loss on response tokens only; optional packing",
    "seq_cls": "sequence classification (single- or multi-label) with a head on an encoder or decoder",
    "token_cls": "token classification (NER, BIO tags) with labels aligned to sub-word tokens",
    "qa": "extractive question answering (start/end spans; long contexts split with a stride)",
    "seq2seq": "encoder-decoder generation (translation, summarisation), generated at eval time",
}

METRICS: dict[str, tuple[str, ...]] = {
    "clm": ("loss", "perplexity"),
    "mlm": ("loss", "perplexity", "accuracy"),
    "sft": ("loss", "perplexity", "exact_match"),
    "seq_cls": ("loss", "accuracy", "precision_micro", "recall_micro", "f1_micro",
                "precision_macro", "recall_macro", "f1_macro"),
    "token_cls": ("loss", "accuracy", "precision", "recall", "f1"),
    "qa": ("loss", "exact_match", "f1"),
    "seq2seq": ("loss", "bleu", "rouge1", "rouge2", "rougeL"),
}

LOWER_IS_BETTER = frozenset({"loss", "perplexity"})


def metric_mode(metric: str) -> str:
    """'min' for losses, 'max' for scores."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def check_metric(objective: str, metric: str, key: str) -> None:
    valid = METRICS[objective]
    if metric not in valid:
        raise ValueError(f"{key}={metric!r} is not a metric of objective {objective}; valid: {', '.join(valid)}")
