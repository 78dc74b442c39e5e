"""Start-up: wall time of the light commands (target <= 0.5 s: no torch on their path) and the time
from `llaunch run` to the first optimizer step: the quickstart with its data prepared (as on a second run),
and the SFT work of issue 18 (bench/sft_work.py) with a fresh cache and a warm one, beside a bare PyTorch
script doing the same (tokenize, build the model, one step: bench/baselines/bare_sft_first_step.py), and the
peak resident memory of those SFT starts (the largest process: llaunch, its worker or the worker's preparing
child; target: no higher than the bare script's). "The bare script less its tokenizing" is the floor a warm
cache is up against: that script's imports, model load and one step.

    python bench/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import ENV, PEAK_RSS, PYTHON, ROOT, alternate, medians, run, save, table, timed

QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
LLAUNCH = [PYTHON, "-m", "launcher"]


ONE_PROCESS = ["resources.launcher=local", "resources.procs_per_node=1", "~train.global_batch_size"]
FRESH = "sft: llaunch run, fresh cache -> first step"
WARM = "sft: llaunch run, warm cache -> first step"
BARE = "sft: bare PyTorch script -> first step"
UNTOKENIZED = "sft: the bare script less its tokenizing"


PEAK_MIB: dict[str, list[float]] = {FRESH: [], WARM: [], BARE: []}
BARE_TOKENIZING: list[float] = []  # seconds of each bare run


def _peak_of(name: str, done: subprocess.CompletedProcess) -> str:
    """The wrapped command's output less PEAK_RSS's last line, which goes to PEAK_MIB[name]."""
    *output, peak_kib = done.stdout.strip().splitlines()
    if name in PEAK_MIB:
        PEAK_MIB[name].append(int(peak_kib) / 1024)
    return "\n".join(output)


def first_step_seconds(out: Path, cache: Path, overrides: list[str], recipe: str = QUICKSTART,
                       name: str = "") -> float:
    """Seconds from starting `llaunch run` to the wall-clock time rank 0 logged step 1."""
    argv = [PYTHON, "-c", PEAK_RSS, *LLAUNCH, "run", recipe, f"output.dir={out}", f"output.cache_dir={cache}", "train.max_steps=2",
            "train.log_every=1", "eval.at_start=false", "output.export=false", "logging.tensorboard=false",
            *overrides]
    started = time.time()
    _peak_of(name, subprocess.run(argv, cwd=ROOT, env=ENV, check=True, capture_output=True, text=True))
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(row["time"] for row in rows if row["kind"] == "train" and row["step"] == 1) - started


def sft_setup(tmp: Path) -> tuple[str, Path, Path]:
    """The SFT recipe (one process, packing by default, no eval/export/final checkpoint), its rows and model."""
    from sft_work import sft_recipe

    recipe, rows, model = sft_recipe(tmp, "sft-start", {"max_steps": 2})
    run([*LLAUNCH, "prepare", str(recipe), f"output.cache_dir={tmp / 'sft-cache'}"])
    return str(recipe), rows, model


def bare_first_step_seconds(rows: Path, model: Path) -> float:
    started = time.time()
    done = subprocess.run([PYTHON, "-c", PEAK_RSS, PYTHON, str(ROOT / "bench" / "baselines" / "bare_sft_first_step.py"),
                           "--data", str(rows), "--model", str(model)], cwd=ROOT, env=ENV, check=True,
                          capture_output=True, text=True)
    reported = json.loads(_peak_of(BARE, done).splitlines()[-1])
    BARE_TOKENIZING.append(reported["tokenizing_seconds"])
    return reported["first_step_end"] - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        run([*LLAUNCH, "prepare", QUICKSTART, f"output.cache_dir={cache}"])
        sft_recipe, sft_rows, sft_model = sft_setup(Path(tmp))
        fresh = iter(range(10_000))
        contenders = {
            "llaunch --help": lambda: timed([*LLAUNCH, "--help"]),
            "llaunch validate": lambda: timed([*LLAUNCH, "validate", QUICKSTART]),
            "llaunch plan": lambda: timed([*LLAUNCH, "plan", QUICKSTART]),
            "llaunch run -> first step": lambda: first_step_seconds(out, cache, []),
            # one process without torchrun, as the peers' figures in shared/notes/peers.md were taken
            "llaunch run (local, 1 process) -> first step": lambda: first_step_seconds(out, cache, ONE_PROCESS),
            FRESH: lambda: first_step_seconds(out, Path(tmp) / f"fresh-{next(fresh)}", [], sft_recipe, FRESH),
            WARM: lambda: first_step_seconds(out, Path(tmp) / "sft-cache", [], sft_recipe, WARM),
            BARE: lambda: bare_first_step_seconds(sft_rows, sft_model),
        }
        samples = alternate(contenders, args.rounds)
    # the floor a warm cache is up against: the bare script's imports, model load and step, without its data work
    samples[UNTOKENIZED] = [total - tokenizing for total, tokenizing in zip(samples[BARE], BARE_TOKENIZING)]
    result = medians(samples)
    bare = result[BARE]
    targets = {"llaunch --help": 0.5, "llaunch validate": 0.5, "llaunch plan": 0.5, "llaunch run -> first step": 5.0,
               "llaunch run (local, 1 process) -> first step": 5.0,
               FRESH: bare, WARM: 5.0, BARE: bare, UNTOKENIZED: 5.0}
    rows = [[name, f"{value:.2f} s", f"<= {targets[name]:.2f} s", "yes" if value <= targets[name] else "no"]
            for name, value in result.items()]
    print(table(rows, ["command", "median wall time", "target", "met"]))
    # each round's llaunch time over the same round's bare script: steadier than a ratio of medians when the
    # load of shared cores drifts between rounds
    paired = {name: [ours / theirs for ours, theirs in zip(samples[name], samples[BARE])]
              for name in (FRESH, WARM)}
    for name, ratios in paired.items():
        print(f"{name} / bare, per round: {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")
    peaks = {name: statistics.median(values) for name, values in PEAK_MIB.items()}
    print(table([[name, f"{mib:,.0f} MiB", f"{mib / peaks[BARE]:.2f}x"] for name, mib in peaks.items()],
                ["SFT start", "peak RSS (largest process)", "vs bare"]))
    save("startup", {"median_seconds": result, "samples": samples, "per_round_over_bare": paired,
                     "peak_rss_mib": peaks})


if __name__ == "__main__":
    main()
