"""seq2seq task: translate simple sentences into a made-up Romance-like language.

Word by word through a fixed dictionary, with the adjective moved after the noun and agreeing in
number: "anna sees three red cats" -> "anna ve tres gatos rojos". Only names are the same on both
sides, so copying the source scores a BLEU near 0; the rule is learnable by a tiny T5.
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl

NAMES = ["anna", "ben", "clara", "david", "ella", "finn", "greta", "hugo", "iris", "jonas"]
VERBS = {"sees": "ve", "has": "tiene", "wants": "quiere", "feeds": "alimenta", "paints": "pinta"}
NUMBERS = {"two": "dos", "three": "tres", "four": "cuatro", "five": "cinco", "six": "seis"}
COLORS = {"red": "rojo", "blue": "azul", "green": "verde", "black": "negro", "white": "blanco", "small": "chico"}
ANIMALS = {"cat": "gato", "dog": "perro", "bird": "pajaro", "horse": "caballo", "fish": "pez", "goat": "cabra"}
PLACES = {"park": "parque", "river": "rio", "garden": "jardin", "market": "mercado", "school": "escuela"}


def plural(word: str) -> str:
    return word + ("es" if word[-1] in "zlrn" else "s")


def pair(rng: random.Random) -> dict:
    name, verb = rng.choice(NAMES), rng.choice(list(VERBS))
    color, animal = rng.choice(list(COLORS)), rng.choice(list(ANIMALS))
    kind = rng.randrange(3)
    if kind == 0:
        number = rng.choice(list(NUMBERS))
        source = f"{name} {verb} {number} {color} {animal}s"
        target = f"{name} {VERBS[verb]} {NUMBERS[number]} {plural(ANIMALS[animal])} {plural(COLORS[color])}"
    elif kind == 1:
        source = f"{name} {verb} a {color} {animal}"
        target = f"{name} {VERBS[verb]} un {ANIMALS[animal]} {COLORS[color]}"
    else:
        friend, place = rng.choice(NAMES), rng.choice(list(PLACES))
        source = f"{name} and {friend} went to the {place}"
        target = f"{name} y {friend} fueron al {PLACES[place]}"
    return {"source": source, "target": target}


def write(out: Path) -> None:
    train_rng, eval_rng = random.Random(41), random.Random(42)
    train = [pair(train_rng) for _ in range(3000)]
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "eval.jsonl", [pair(eval_rng) for _ in range(200)])
    # the tokenizer is trained on plain text of both sides (not on the JSON syntax around it)
    (out / "corpus.txt").write_text("".join(f"{row['source']}\n{row['target']}\n" for row in train), encoding="utf-8")
