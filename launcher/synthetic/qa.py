"""qa task: a passage of facts about a dozen people; the question asks for one fact, the answer is a span.

"... mara lives in oslo . ben has a green bike . ..." / "what color is the bike of ben ?" -> "green".
Passages are longer than the recipe's window, so they are read in overlapping windows (data.stride).
A random span of the passage is an exact match well under 1% of the time.
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl

NAMES = ["anna", "ben", "clara", "david", "ella", "finn", "greta", "hugo", "iris", "jonas", "kira", "leo",
         "mara", "nils", "olga", "paul", "rosa", "sven"]
CITIES = ["berlin", "paris", "madrid", "oslo", "tokyo", "cairo", "lima", "vienna", "rome", "dublin", "new york"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
THINGS = ["car", "bike", "hat", "coat", "boat", "kite"]
WORKPLACES = ["bakery", "library", "post office", "hospital", "school", "bank", "museum", "garage"]


def fact(rng: random.Random, name: str) -> tuple[str, str, str]:
    """(sentence, question, answer) about `name`."""
    kind = rng.randrange(3)
    if kind == 0:
        city = rng.choice(CITIES)
        return f"{name} lives in {city} .", f"where does {name} live ?", city
    if kind == 1:
        color, thing = rng.choice(COLORS), rng.choice(THINGS)
        return f"{name} has a {color} {thing} .", f"what color is the {thing} of {name} ?", color
    place = rng.choice(WORKPLACES)
    return f"{name} works at the {place} .", f"where does {name} work ?", place


def example(rng: random.Random) -> dict:
    people = rng.sample(NAMES, rng.randint(6, 8))
    facts = [fact(rng, name) for name in people]
    asked = rng.randrange(len(facts))
    context, start = "", 0
    for k, (sentence, _, answer) in enumerate(facts):
        if k == asked:
            start = len(context) + sentence.rindex(answer)
        context += sentence + " "
    question, answer = facts[asked][1], facts[asked][2]
    assert context[start:start + len(answer)] == answer
    return {"question": question, "context": context.strip(), "answers": {"text": [answer], "answer_start": [start]}}


def write(out: Path) -> None:
    train_rng, eval_rng = random.Random(31), random.Random(32)
    write_jsonl(out / "train.jsonl", [example(train_rng) for _ in range(1500)])
    write_jsonl(out / "eval.jsonl", [example(eval_rng) for _ in range(200)])
