"""The field's metrics, from the libraries that define them.

Accuracy, precision/recall/F1 (micro, macro) from scikit-learn; entity-level F1 from seqeval; SQuAD
exact match and F1 as the official SQuAD v1.1 script computes them; BLEU from sacrebleu; ROUGE-1/2/L
from rouge-score. Fractions are in [0, 1]; BLEU and ROUGE in [0, 100], as sacrebleu prints them.
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np


def classification_scores(gold: list, predicted: list, num_labels: int, multi_label: bool) -> dict[str, float]:
    """gold/predicted: class ids (single-label) or multi-hot lists (multi-label; accuracy is exact-set match)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(gold), np.asarray(predicted)
    labels = None if multi_label else list(range(num_labels))
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, labels=labels, zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    return out


def entity_scores(gold_tags: list[list[str]], predicted_tags: list[list[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 (an entity counts only if its type and both ends match) + tag accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"precision": float(precision_score(gold_tags, predicted_tags, zero_division=0)),
            "recall": float(recall_score(gold_tags, predicted_tags, zero_division=0)),
            "f1": float(f1_score(gold_tags, predicted_tags, zero_division=0)),
            "accuracy": float(accuracy_score(gold_tags, predicted_tags))}


def normalize_answer(text: str) -> str:
    """SQuAD: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: list[str], answers: list[list[str]]) -> dict[str, float]:
    """Exact match and token F1, each the max over an example's gold answers, averaged over examples."""
    em = f1 = 0.0
    for prediction, truths in zip(predictions, answers):
        truths = truths or [""]
        em += max(float(normalize_answer(prediction) == normalize_answer(t)) for t in truths)
        f1 += max(_token_f1(prediction, t) for t in truths)
    n = max(len(predictions), 1)
    return {"exact_match": em / n, "f1": f1 / n}


def exact_match(predictions: list[str], references: list[str]) -> float:
    same = sum(" ".join(p.split()) == " ".join(r.split()) for p, r in zip(predictions, references))
    return same / max(len(predictions), 1)


def bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    names = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(names))
    totals = dict.fromkeys(names, 0.0)
    for prediction, reference in zip(predictions, references):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    n = max(len(predictions), 1)
    return {name: 100.0 * total / n for name, total in totals.items()}
