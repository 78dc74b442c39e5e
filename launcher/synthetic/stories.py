"""The quickstart corpus: short stories from a small grammar with rules a tiny model can learn:
counting in words, agreement between a name and the animals it owns, fixed phrases.
"""

from __future__ import annotations

import random
from pathlib import Path

NAMES = ["anna", "ben", "clara", "david", "ella", "finn", "greta", "hugo", "iris", "jonas", "kira", "leo"]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "goat", "duck", "frog"]
COLORS = ["red", "blue", "green", "yellow", "black", "white"]
PLACES = ["park", "river", "garden", "market", "school", "forest"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def _story(rng: random.Random) -> str:
    name, friend = rng.sample(NAMES, 2)
    animal = rng.choice(ANIMALS)
    color = rng.choice(COLORS)
    count = rng.randrange(2, 8)
    start = rng.randrange(0, len(NUMBERS) - 4)
    sentences = [
        f"{name} has {NUMBERS[count - 1]} {color} {animal}s .",
        f"{name} went to the {rng.choice(PLACES)} with {friend} .",
        f"{friend} counted : {' '.join(NUMBERS[start:start + 4])} .",
        f"the {animal}s of {name} are {color} .",
    ]
    if rng.random() < 0.5:
        sentences.append(f"{friend} gave {name} one more {animal} , so now {name} has {NUMBERS[count]} {animal}s .")
    rng.shuffle(sentences[1:3])
    return " ".join(sentences)


def quickstart_corpus(lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [_story(rng) for _ in range(lines)]


def write_quickstart(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.txt").write_text("\n".join(quickstart_corpus(3000, seed=1)) + "\n", encoding="utf-8")
    (out_dir / "eval.txt").write_text("\n".join(quickstart_corpus(200, seed=2)) + "\n", encoding="utf-8")

