"""Train-loop throughput: llaunch (eager, and with parallel.compile) vs a bare PyTorch DDP loop vs the Trainer.

Same model (the config llaunch exports), same packed blocks, same micro batch, same optimizer and
schedule, fp32 on CPU; 1 and 2 processes; contenders alternate every round. Steady-state tokens/s is
measured from the end of step 10 to the last step, so start-up is excluded (see startup.py for it).

    python bench/throughput.py [--rounds 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, alternate, medians, run, save, table

RECIPE = str(ROOT / "bench" / "recipes" / "throughput.yaml")
SKIP = 10


def llaunch_tokens_per_s(out: Path, cache: Path, procs: int, steps: int, *overrides: str) -> float:
    run([PYTHON, "-m", "launcher", "run", RECIPE, f"output.dir={out}", f"output.cache_dir={cache}",
         f"resources.procs_per_node={procs}", f"train.max_steps={steps}", *overrides])
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = {row["step"]: row for row in rows if row["kind"] == "train"}
    first, last = train[SKIP], train[steps]
    recipe_tokens = 8 * procs * 256
    return (steps - SKIP) * recipe_tokens / (last["time"] - first["time"])


def baseline_tokens_per_s(script: str, data: Path, config: Path, procs: int, steps: int) -> float:
    result = run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
                  str(ROOT / "bench" / "baselines" / script), "--data", str(data), "--config", str(config),
                  "--steps", str(steps), "--skip", str(SKIP)], env={"OMP_NUM_THREADS": str(2 // procs)})
    return json.loads(result.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        run([PYTHON, "-m", "launcher", "run", RECIPE, f"output.dir={out}", f"output.cache_dir={cache}",
             "train.max_steps=1", "output.export=true", "resources.procs_per_node=1"])
        config = next(out.glob("*/export"))
        data = next(cache.glob("data/*/train.npy"))
        contenders = {}
        for procs in (1, 2):
            contenders[f"llaunch {procs}p"] = lambda p=procs: llaunch_tokens_per_s(out, cache, p, args.steps)
            contenders[f"llaunch compiled {procs}p"] = lambda p=procs: llaunch_tokens_per_s(
                out, cache, p, args.steps, "parallel.compile=true")
            contenders[f"bare loop {procs}p"] = lambda p=procs: baseline_tokens_per_s(
                "bare_loop.py", data, config, p, args.steps)
            contenders[f"Trainer {procs}p"] = lambda p=procs: baseline_tokens_per_s(
                "hf_trainer.py", data, config, p, args.steps)
        samples = alternate(contenders, args.rounds)
    result = medians(samples)
    rows = []
    for procs in (1, 2):
        ours, compiled, bare, trainer = (result[f"{name} {procs}p"]
                                         for name in ("llaunch", "llaunch compiled", "bare loop", "Trainer"))
        rows.append([f"{procs}", f"{ours:,.0f}", f"{compiled:,.0f}", f"{bare:,.0f}", f"{trainer:,.0f}",
                     f"{ours / bare:.3f}", f"{ours / trainer:.3f}", f"{compiled / bare:.3f}"])
    print(table(rows, ["processes", "llaunch tok/s", "llaunch compiled tok/s", "bare loop tok/s", "Trainer tok/s",
                       "llaunch / bare (target >= 0.97)", "llaunch / Trainer (target >= 1.05)",
                       "compiled / bare (aim >= 1.20)"]))
    scaling = {name: result[f"{name} 2p"] / result[f"{name} 1p"]
               for name in ("llaunch", "llaunch compiled", "bare loop", "Trainer")}
    print("scaling 2 processes / 1 process: " + ", ".join(f"{k} {v:.2f}x" for k, v in scaling.items()))
    save("throughput", {"median_tokens_per_s": result, "samples": samples, "scaling_2p_over_1p": scaling})


if __name__ == "__main__":
    main()
