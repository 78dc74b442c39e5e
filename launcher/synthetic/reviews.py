"""seq_cls task: one-sentence reviews whose label is the adjective's polarity, flipped by a negation.

"the hotel was really awful" -> negative; "the hotel was not awful" -> positive;
"i did not enjoy the concert" -> negative. Balanced by construction (the label is drawn first).
A bag-of-words model that ignores "not" is stuck near 0.75; chance and majority are 0.5.
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl

NOUNS = ["movie", "food", "hotel", "book", "service", "concert", "game", "trip", "room", "show", "meal", "album"]
GOOD = ["good", "great", "excellent", "wonderful", "lovely", "fantastic", "superb", "pleasant", "brilliant"]
BAD = ["bad", "awful", "terrible", "horrible", "boring", "poor", "dreadful", "disappointing", "dull"]
LIKE = ["loved", "enjoyed", "liked", "adored"]
DISLIKE = ["hated", "disliked", "loathed", "despised"]
INTENSIFIERS = ["", "really ", "very ", "quite ", "truly "]
OPENERS = ["", "honestly , ", "to be fair , ", "overall , ", "in the end , "]


def review(rng: random.Random, positive: bool) -> str:
    negated = rng.random() < 0.5
    polar = positive != negated  # the word's own polarity
    noun, opener = rng.choice(NOUNS), rng.choice(OPENERS)
    if rng.random() < 0.5:
        adjective = rng.choice(GOOD if polar else BAD)
        middle = "was not " if negated else f"was {rng.choice(INTENSIFIERS)}"
        return f"{opener}the {noun} {middle}{adjective}"
    verb = rng.choice(LIKE if polar else DISLIKE)
    if negated:
        base = {"loved": "love", "enjoyed": "enjoy", "liked": "like", "adored": "adore", "hated": "hate",
                "disliked": "dislike", "loathed": "loathe", "despised": "despise"}[verb]
        return f"{opener}i did not {base} the {noun}"
    return f"{opener}i {verb} the {noun}"


def rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k in range(count):
        positive = k % 2 == 0
        out.append({"text": review(rng, positive), "label": "positive" if positive else "negative"})
    rng.shuffle(out)
    return out


def write(out: Path) -> None:
    write_jsonl(out / "train.jsonl", rows(2000, seed=11))
    write_jsonl(out / "eval.jsonl", rows(400, seed=12))
