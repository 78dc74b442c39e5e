"""sft task: questions about a quickstart story, as chat rows (the user gives the story and asks).

story + "what color are the goats of anna" -> "red"; "where did ben go" -> "the market";
"who went with clara" -> "hugo". The answers are in the story, whose kind the quickstart model was
pretrained on; a model that has not been tuned continues the story instead of answering (exact
match 0), and a guess of the right kind is right 1 time in 6 to 12.
"""

from __future__ import annotations

import random
from pathlib import Path

from launcher.synthetic.jsonl import write_jsonl
from launcher.synthetic.stories import ANIMALS, COLORS, NAMES, NUMBERS, PLACES


def _story(rng: random.Random) -> tuple[str, dict]:
    name, friend = rng.sample(NAMES, 2)
    animal, color, place = rng.choice(ANIMALS), rng.choice(COLORS), rng.choice(PLACES)
    count = rng.randrange(2, 8)
    text = (f"{name} has {NUMBERS[count - 1]} {color} {animal}s . {name} went to the {place} with {friend} . "
            f"the {animal}s of {name} are {color} .")
    return text, {"name": name, "friend": friend, "animal": animal, "color": color, "place": place}


def example(rng: random.Random) -> dict:
    story, f = _story(rng)
    kind = rng.randrange(3)
    if kind == 0:
        instruction, output = f"what color are the {f['animal']}s of {f['name']}", f["color"]
    elif kind == 1:
        instruction, output = f"where did {f['name']} go", f"the {f['place']}"
    else:
        instruction, output = f"who went with {f['name']}", f["friend"]
    return {"messages": [{"role": "user", "content": f"{story} {instruction}"},
                         {"role": "assistant", "content": output}]}


def write(out: Path) -> None:
    train_rng, eval_rng = random.Random(51), random.Random(52)
    write_jsonl(out / "train.jsonl", [example(train_rng) for _ in range(2000)])
    write_jsonl(out / "eval.jsonl", [example(eval_rng) for _ in range(150)])
    (out / "template.jinja").write_text(TEMPLATE, encoding="utf-8")


# The quickstart tokenizer knows only the story words: a template made of them (no newlines, no markup).
TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ ' answer : ' + message['content'] + ' .' }}"
    "{% else %}{{ message['content'] + ' .' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' answer :' }}{% endif %}\n"
)
