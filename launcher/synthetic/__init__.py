"""Deterministic synthetic data for the CPU recipes (no hub access on test machines).

Each task has a known rule a small model can learn, so tests can assert that a score really rises
far above chance. Regenerate every committed file with `python -m launcher.synthetic recipes/data`.
"""

from __future__ import annotations

from pathlib import Path

from launcher.synthetic.stories import quickstart_corpus, write_quickstart

TASKS = ("quickstart", "reviews", "ner", "qa", "translation", "instructions", "preference")


def write_all(root: Path) -> None:
    from launcher.synthetic import instructions, ner, preference, qa, reviews, translation

    write_quickstart(root / "quickstart")
    reviews.write(root / "reviews")
    ner.write(root / "ner")
    qa.write(root / "qa")
    translation.write(root / "translation")
    instructions.write(root / "instructions")
    preference.write(root / "preference")


__all__ = ["TASKS", "quickstart_corpus", "write_all", "write_quickstart"]
