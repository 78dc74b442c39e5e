"""Where a training step's wall time goes: py-spy samples the quickstart's workers (wall clock, idle
included, so waiting in a collective counts) and each sample of the train loop is put in the phase of
the loop line it is on: forward, backward, optimizer, or the rest of the step (batch building, moving
it to the device, logging and its synchronisation, the stop check). Eval and checkpoint time is
reported beside it, not in the step.

    pip install -e '.[bench]'   # py-spy
    python bench/step_profile.py [--steps 300]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from common import ENV, PYTHON, ROOT, run, save, table

LOOP = ROOT / "launcher" / "train" / "trainer.py"
# a line's phase, by what the line calls; lines of the loop and of the step matching none are "rest of step"
PHASES = {"forward": "engine.model(**", "backward": "engine.backward(", "optimizer": "engine.step()",
          "eval": "self._evaluate_if_due()", "checkpoint": "self._save_if_due("}
BODIES = ("while self.state.step <", "def _step(self)")  # Trainer._train's loop and Trainer._step


def loop_lines() -> dict[int, str]:
    """Line number -> phase for every line of the train loop and of the step it calls."""
    lines = LOOP.read_text().splitlines()
    phases = {}
    for body in BODIES:
        phases.update(_body_lines(lines, next(i for i, line in enumerate(lines) if line.strip().startswith(body))))
    return phases


def _body_lines(lines: list[str], start: int) -> dict[int, str]:
    indent = len(lines[start]) - len(lines[start].lstrip())
    phases = {}
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        phases[i + 1] = next((phase for phase, marker in PHASES.items() if marker in line), "rest of step")
    return phases


def profile(steps: int, out: Path) -> tuple[Counter, Counter]:
    raw = out / "samples.txt"
    cache = out / "cache"
    run([PYTHON, "-m", "launcher", "prepare", str(ROOT / "recipes" / "quickstart.yaml"), f"output.cache_dir={cache}"])
    argv = [shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy"), "record", "--subprocesses", "--idle", "--rate", "250", "--format",
            "raw", "--output", str(raw), "--", PYTHON, "-m", "launcher", "run", str(ROOT / "recipes" / "quickstart.yaml"),
            f"output.dir={out / 'runs'}", f"output.cache_dir={cache}", f"train.max_steps={steps}"]
    subprocess.run(argv, cwd=ROOT, env=ENV, check=True, capture_output=True)
    phases = loop_lines()
    counts: Counter = Counter()
    rest: Counter = Counter()  # "rest of step" by loop line, to say what it is
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        found = re.findall(r"(?:_train|_step) \([^)]*?trainer\.py:(\d+)\)", stack)  # the innermost of the two
        number = int(found[-1]) if found else None
        if number in phases:
            counts[phases[number]] += int(n)
            if phases[number] == "rest of step":
                rest[number] += int(n)
    return counts, rest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counts, rest = profile(args.steps, Path(tmp))
    step_phases = ("forward", "backward", "optimizer", "rest of step")
    in_steps = sum(counts[p] for p in step_phases)
    everything = sum(counts.values())
    rows = [[phase, f"{counts[phase] / in_steps:.1%}", f"{counts[phase] / everything:.1%}"] for phase in step_phases]
    rows += [[phase, "-", f"{counts[phase] / everything:.1%}"] for phase in ("eval", "checkpoint")]
    print(table(rows, ["phase", "share of step time", "share of loop time"]))
    print(f"outside forward/backward/optimizer: {counts['rest of step'] / in_steps:.1%} of step time; by line:")
    source = LOOP.read_text().splitlines()
    lines = {f"trainer.py:{number}  {source[number - 1].strip()[:70]}": n / in_steps for number, n in rest.most_common(6)}
    for line, share in lines.items():
        print(f"  {share:6.1%}  {line}")
    save("step_profile", {"steps": args.steps, "samples": dict(counts),
                          "outside_fwd_bwd_opt": counts["rest of step"] / in_steps, "outside_by_line": lines})


if __name__ == "__main__":
    main()
