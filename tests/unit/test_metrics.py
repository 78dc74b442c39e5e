"""The metric functions give the textbook values on small hand-checked cases."""

from __future__ import annotations

import pytest

from launcher.train.evaluation.scores import (bleu, classification_scores, entity_scores, exact_match, rouge,
                                              squad_scores)

pytestmark = pytest.mark.unit


def test_single_label_micro_and_macro():
    gold, predicted = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    scores = classification_scores(gold, predicted, num_labels=3, multi_label=False)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["f1_micro"] == pytest.approx(4 / 6)  # single-label: micro P = R = F1 = accuracy
    # per class: P = (1/2, 2/3, 1), R = (1/2, 1, 1/2)
    assert scores["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert scores["recall_macro"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1 = [2 * p * r / (p + r) for p, r in ((1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2))]
    assert scores["f1_macro"] == pytest.approx(sum(f1) / 3)


def test_multi_label_accuracy_is_exact_set_match():
    gold = [[1, 0, 1], [0, 1, 0]]
    predicted = [[1, 0, 1], [0, 1, 1]]
    scores = classification_scores(gold, predicted, num_labels=3, multi_label=True)
    assert scores["accuracy"] == 0.5
    assert scores["precision_micro"] == pytest.approx(3 / 4) and scores["recall_micro"] == 1.0


def test_entity_f1_counts_whole_entities_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # the person's end is wrong: that entity misses
    scores = entity_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 6)


def test_squad_normalizes_and_takes_the_best_gold_answer():
    scores = squad_scores(["The Red car!", "post office", "blue"], [["red car"], ["the post", "office"], ["green"]])
    assert scores["exact_match"] == pytest.approx(1 / 3)
    # "post office" vs "the post": P 1/2, R 1 -> 2/3; vs "office": P 1/2, R 1 -> 2/3
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_bleu_and_rouge_scales():
    refs = ["anna tiene tres gatos rojos", "ben ve un perro azul"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["anna has three red cats", "ben sees a blue dog"], refs) < 10
    scores = rouge(refs, refs)
    assert scores == {"rouge1": pytest.approx(100.0), "rouge2": pytest.approx(100.0), "rougeL": pytest.approx(100.0)}
    assert rouge(["tiene anna"], ["anna tiene"])["rouge2"] == 0.0


def test_exact_match_ignores_spacing_only():
    assert exact_match(["red  .", "the river"], ["red .", "the forest"]) == 0.5
