"""Shared by the benchmarks: run contenders alternately (A B C A B C ...), take medians, report ratios.

These machines are noisy (about 15-25% run to run), so absolute numbers are context only.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DS_ACCELERATOR": "cpu"}


# runs argv and prints, as the last line, the largest resident set (KiB) of it or any process it waited for
PEAK_RSS = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def alternate(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each contender once per round, in the same order every round; return all measurements."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for round_no in range(rounds):
        for name, measure in contenders.items():
            value = measure()
            samples[name].append(value)
            print(f"  round {round_no + 1}/{rounds}  {name:<28} {value:,.3f}", flush=True)
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=ROOT, env={**ENV, **kwargs.pop("env", {})}, text=True,
                            capture_output=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    run(argv)
    return time.perf_counter() - started


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"when": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), **payload}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"results: {path}")
    return path


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
