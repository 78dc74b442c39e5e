"""dpo and reward task: a quickstart story cut at a point where one continuation is right, as preference rows.

prompt: a story up to "ben has three red" (a plural noun follows) or "ben counted : four five six" (the
next number); chosen: the right continuation; rejected: the same continuation corrupted (the singular
noun, a wrong number). Which answer is preferred is
decided by the story itself, so a policy can learn it and held-out pairs measure it; the untuned
quickstart model is the reference (reward accuracy 0.5 at the start).
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl
from launcher.synthetic.stories import ANIMALS, COLORS, NAMES, NUMBERS, PLACES


def example(rng: random.Random) -> dict:
    name, friend = rng.sample(NAMES, 2)
    animal, color, place = rng.choice(ANIMALS), rng.choice(COLORS), rng.choice(PLACES)
    count, other, start = rng.randrange(2, 8), rng.randrange(2, 8), rng.randrange(0, len(NUMBERS) - 4)
    story = f"{name} has {NUMBERS[count - 1]} {color} {animal}s . {name} went to the {place} with {friend} ."
    if rng.random() < 0.5:
        prompt = f"{story} {friend} has {NUMBERS[other - 1]} {rng.choice(COLORS)}"
        chosen, rejected = f" {animal}s", f" {animal}"
    else:
        prompt = f"{story} {friend} counted : {' '.join(NUMBERS[start:start + 3])}"
        wrong = rng.choice([n for n in NUMBERS if n != NUMBERS[start + 3]])
        chosen, rejected = f" {NUMBERS[start + 3]}", f" {wrong}"
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def write(out: Path) -> None:
    write_jsonl(out / "train.jsonl", [example(random.Random(f"preference-train-{i}")) for i in range(1200)])
    write_jsonl(out / "eval.jsonl", [example(random.Random(f"preference-eval-{i}")) for i in range(200)])
