"""token_cls task: sentences from templates with people, places and organisations, tagged BIO.

Every entity is made of random made-up words ("vo kelan", "tarumi"), fresh in every sentence, so a
memorised list is no help: only the context tells a person from a place or an organisation.
Entities can span words. Predicting all `O` scores an entity F1 of 0.
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl

SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "vo", "su", "del", "an", "bri", "ko", "zu", "mar", "ti", "ne", "sa",
             "ru", "gel", "o", "fa", "ber", "li", "no", "quin"]
TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} flew from {LOC} to {LOC} last week .",
    "yesterday {PER} met {PER} at the {ORG} office .",
    "the {ORG} team visited {LOC} in may .",
    "{PER} said that {ORG} will open a shop in {LOC} .",
    "after the meeting , {PER} called {PER} .",
    "{ORG} hired {PER} as a new manager .",
    "in {LOC} , {PER} founded {ORG} .",
    "the weather in {LOC} was cold , said {PER} .",
    "shares of {ORG} rose after {PER} spoke .",
]


def made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def sentence(rng: random.Random) -> dict:
    words, tags = [], []
    for part in rng.choice(TEMPLATES).split():
        if not part.startswith("{"):
            words.append(part), tags.append("O")
            continue
        kind = part[1:4]
        entity = [made_up_word(rng) for _ in range(1 if rng.random() < 0.6 else 2)]
        words += entity
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
    return {"tokens": words, "tags": tags}


def write(out: Path) -> None:
    train_rng, eval_rng = random.Random(21), random.Random(22)
    write_jsonl(out / "train.jsonl", [sentence(train_rng) for _ in range(2000)])
    write_jsonl(out / "eval.jsonl", [sentence(eval_rng) for _ in range(300)])
