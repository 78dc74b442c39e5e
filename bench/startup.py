"""Start-up: wall time of the light commands (target <= 0.5 s: no torch on their path) and the time
from `llaunch run` to the first optimizer step (data already prepared, as on a second run).

    python bench/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from common import ENV, PYTHON, ROOT, alternate, medians, run, save, table, timed

QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
LLAUNCH = [PYTHON, "-m", "launcher"]


ONE_PROCESS = ["resources.launcher=local", "resources.procs_per_node=1", "~train.global_batch_size"]


def first_step_seconds(out: Path, cache: Path, overrides: list[str]) -> float:
    """Seconds from starting `llaunch run` to the wall-clock time rank 0 logged step 1."""
    argv = [*LLAUNCH, "run", QUICKSTART, f"output.dir={out}", f"output.cache_dir={cache}", "train.max_steps=2",
            "train.log_every=1", "eval.at_start=false", "output.export=false", "logging.tensorboard=false",
            *overrides]
    started = time.time()
    subprocess.run(argv, cwd=ROOT, env=ENV, check=True, capture_output=True)
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(row["time"] for row in rows if row["kind"] == "train" and row["step"] == 1) - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        run([*LLAUNCH, "prepare", QUICKSTART, f"output.cache_dir={cache}"])
        contenders = {
            "llaunch --help": lambda: timed([*LLAUNCH, "--help"]),
            "llaunch validate": lambda: timed([*LLAUNCH, "validate", QUICKSTART]),
            "llaunch plan": lambda: timed([*LLAUNCH, "plan", QUICKSTART]),
            "llaunch run -> first step": lambda: first_step_seconds(out, cache, []),
            # one process without torchrun, as the peers' figures in shared/notes/peers.md were taken
            "llaunch run (local, 1 process) -> first step": lambda: first_step_seconds(out, cache, ONE_PROCESS),
        }
        samples = alternate(contenders, args.rounds)
    result = medians(samples)
    targets = {"llaunch --help": 0.5, "llaunch validate": 0.5, "llaunch plan": 0.5, "llaunch run -> first step": 5.0,
               "llaunch run (local, 1 process) -> first step": 5.0}
    rows = [[name, f"{value:.2f} s", f"<= {targets[name]} s", "yes" if value <= targets[name] else "no"]
            for name, value in result.items()]
    print(table(rows, ["command", "median wall time", "target", "met"]))
    save("startup", {"median_seconds": result, "samples": samples})


if __name__ == "__main__":
    main()
