"""The GPU check of issue 20: one command, at most 8 minutes on a CUDA machine, every case through `llaunch`.

Cases, most telling first, each under its own timeout and the overall deadline (a case that fails or hangs
costs its own time only); bench/results/gpu.json is rewritten after every case, the table at the end goes to
bench/results/gpu.md as well:
- engine x method (DDP, FSDP2, ZeRO-2, ZeRO-3 x full, LoRA, QLoRA 4-bit) on a small Llama, bf16, world size =
  the GPUs present (bench/recipes/gpu_small.yaml): the loss falls, checkpoints complete, the export loads; for
  full, a resume from step 10 repeats steps 11-20 (bit-identical, or the largest loss difference);
- packed SFT kernels (bench/packing_attention.py): per-example loss in the packed row vs alone (<= 1e-3 bf16),
  tokens/s of the per-example loop, FlexAttention and flash-attn (when installed);
- a ~1B Llama at seq 2048, FSDP2, bf16 (bench/recipes/gpu_1b.yaml) with and without parallel.compile and
  activation checkpointing: tokens/s and MFU from metrics.jsonl, peak GPU memory (nvidia-smi, polled) against
  `llaunch estimate` (launcher.estimate.estimate_recipe);
- host-device syncs: the 1B runs count synchronizing calls in their unlogged steps (LLAUNCH_SYNC_CHECK,
  launcher/train/sync_check.py; target 0);
- packed vs padded SFT useful tokens/s on variable-length rows (bench/packing.py --cuda; target >= 1.5x);
- async vs sync checkpoint stall of that model: the extra seconds of the steps after a save;
- `llaunch run` to the first step (the first case's first metrics row).
Without CUDA it validates and plans every case's recipe (`llaunch validate` / `plan`, in process), says so in
one line and exits 0 (1 if a recipe is refused): CI runs that part (tests/unit/test_gpu_check.py).

    python bench/gpu_check.py [--budget 480] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ENV, PYTHON, RESULTS, ROOT, table

SMALL = str(ROOT / "bench" / "recipes" / "gpu_small.yaml")
BIG = str(ROOT / "bench" / "recipes" / "gpu_1b.yaml")
ENGINES, METHODS = ("ddp", "fsdp2", "zero2", "zero3"), ("full", "lora", "qlora")
ENV_GPU = {**{k: v for k, v in ENV.items() if k != "DS_ACCELERATOR"}, "LLAUNCH_SYNC_CHECK": "1"}
SAVE_AT = 8  # the 1B stall runs save after this step


def method_overrides(engine: str, method: str) -> list[str]:
    out = [f"parallel.strategy={engine}", f"method.type={method}"]
    if method == "qlora":
        out.append("method.qlora.compute_dtype=bfloat16")
        if engine in ("fsdp2", "zero3"):
            out.append("method.qlora.quant_storage=float32")  # = model.dtype: 4-bit weights shard like the rest
    return out


def cases() -> list[dict]:
    """Every case: name, recipe, overrides, what to measure, timeout (s); in the order they run."""
    matrix = {(e, m): {"name": f"{e} {m}", "recipe": SMALL, "overrides": method_overrides(e, m), "kind": "engine",
                       "resume": m == "full", "timeout": 90 if m == "full" else 60}
              for e in ENGINES for m in METHODS}
    big = [{"name": f"1B fsdp2{' compile' if c else ''}{' AC' if a else ''}", "recipe": BIG, "kind": "throughput",
            "overrides": [f"parallel.compile={str(c).lower()}", f"parallel.activation_checkpointing={str(a).lower()}",
                          "train.log_every=4"],  # 3 unlogged steps in 4 for the sync check
            "timeout": 150 if c else 100} for c, a in ((False, False), (True, False), (True, True), (False, True))]
    stall = [{"name": f"1B checkpoint {mode}", "recipe": BIG, "kind": "stall", "timeout": 120,
              "overrides": ["train.max_steps=12", f"checkpoint.every={SAVE_AT}",
                            f"checkpoint.async={str(mode == 'async').lower()}", "checkpoint.keep_last=1"]}
             for mode in ("sync", "async")]
    packed = {"name": "packed SFT kernels", "kind": "packed", "recipe": str(ROOT / "bench" / "recipes" / "packing.yaml"),
              "overrides": ["resources.device=cuda", "parallel.mixed_precision=bf16"], "timeout": 90}
    packed_speed = {"name": "packed vs padded SFT", "kind": "packed_speed", "recipe": packed["recipe"],
                    "overrides": packed["overrides"], "timeout": 120}
    order = [matrix["ddp", "full"], packed, big[0], packed_speed, big[1], matrix["fsdp2", "full"], matrix["zero2", "full"],
             matrix["zero3", "full"], *(matrix[e, "qlora"] for e in ENGINES), *(matrix[e, "lora"] for e in ENGINES),
             big[2], *stall, big[3]]
    return order


# ---- without CUDA: check the recipes ----
def check_recipes(selected: list[dict]) -> int:
    from launcher.cli import main

    failed = 0
    for case in selected:
        for command in ("validate", "plan"):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = main([command, case["recipe"], *case["overrides"], "resources.procs_per_node=1"])
            if code:
                failed += 1
                print(f"{case['name']}: llaunch {command} refused it: {err.getvalue().strip()}")
    return failed


# ---- with CUDA ----
class Runner:
    def __init__(self, out: Path, gpus: int, deadline: float):
        self.out, self.gpus, self.deadline = out, gpus, deadline
        self.cache = out / "cache"

    def llaunch(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        """One llaunch command in its own process group, killed with its workers when time is up."""
        timeout = min(timeout, self.deadline - time.time())
        if timeout <= 5:
            raise TimeoutError("out of the check's time")
        proc = subprocess.Popen([PYTHON, "-m", "launcher", *args], cwd=ROOT, env=ENV_GPU, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimeoutError(f"llaunch {args[0]} ran past {timeout:.0f} s") from None
        if proc.returncode:
            raise RuntimeError(f"llaunch {args[0]} exited {proc.returncode}: {output[-1500:]}")
        return subprocess.CompletedProcess(args, 0, output)

    def run(self, case: dict, started: float) -> tuple[Path, float]:
        """`llaunch run` of a case in a fresh output dir: (run dir, seconds left of the case's timeout)."""
        out = self.out / case["name"].replace(" ", "-")
        self.llaunch(["run", case["recipe"], *case["overrides"], f"resources.procs_per_node={self.gpus}",
                      f"output.dir={out}", f"output.cache_dir={self.cache}"], case["timeout"])
        [run_dir] = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return run_dir, case["timeout"] - (time.time() - started)


def train_rows(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows if row["kind"] == "train"}


def engine_case(runner: Runner, case: dict) -> dict:
    started = time.time()
    run_dir, left = runner.run(case, started)
    rows = train_rows(run_dir)
    steps = sorted(rows)
    result = {"first_loss": rows[steps[0]]["loss"], "last_loss": rows[steps[-1]]["loss"],
              "checkpoints": sorted(p.parent.name for p in (run_dir / "checkpoints").glob("step-*/COMPLETE")),
              "first_step_s": rows[steps[0]]["time"] - started}
    result["loss_falls"] = result["last_loss"] < result["first_loss"] - 0.5
    result["export_loads"] = _export_loads(run_dir / "export")
    if case["resume"]:
        result.update(_resume_repeats(runner, run_dir, rows, left))
    result["ok"] = bool(result["loss_falls"] and result["export_loads"] and len(result["checkpoints"]) >= 2
                        and result.get("resume_max_loss_diff", 0) < 1e-2)
    return result


def _export_loads(export: Path) -> bool:
    """The export loads with plain transformers and gives a finite loss (on the CPU: this process keeps off the
    GPU, whose memory the runs measure)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(export)
    ids = torch.arange(64)[None]
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return bool(torch.isfinite(loss))


def _resume_repeats(runner: Runner, run_dir: Path, rows: dict[int, dict], left: float) -> dict:
    """Drop everything after step 10 and resume: steps 11-20 again, compared loss by loss."""
    (run_dir / "result.json").unlink(missing_ok=True)
    for folder in (run_dir / "checkpoints").glob("step-*"):
        if int(folder.name.split("-")[1]) > 10:
            shutil.rmtree(folder)
    shutil.rmtree(run_dir / "export", ignore_errors=True)
    kept = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] <= 10]
    (run_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in kept))
    runner.llaunch(["resume", str(run_dir)], left)
    again = train_rows(run_dir)
    diffs = [abs(again[s]["loss"] - rows[s]["loss"]) for s in rows if s > 10]
    return {"resume_bit_identical": max(diffs) == 0.0, "resume_max_loss_diff": max(diffs)}


class PeakMemory:
    """The device's used memory, polled with nvidia-smi every 0.2 s while a run lasts (what the run needs,
    CUDA context and the allocator's cache included)."""

    def __init__(self):
        self.peak_mib, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            self.peak_mib = max([self.peak_mib, *(int(v) for v in out if v.isdigit())])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def throughput_case(runner: Runner, case: dict) -> dict:
    from launcher.estimate import estimate_recipe, human
    from launcher.recipe import load_recipe

    with PeakMemory() as memory:
        run_dir, _ = runner.run(case, time.time())
    rows = train_rows(run_dir)
    steady = [rows[s] for s in sorted(rows) if s > 4]  # compilation and first allocations before
    estimate = estimate_recipe(load_recipe(case["recipe"], case["overrides"]), runner.gpus).total
    peak = memory.peak_mib * 2**20
    syncs = _sync_check(run_dir)
    result = {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady), "sync_check": syncs,
              "mfu": statistics.median(r["mfu"] for r in steady) if all("mfu" in r for r in steady) else None,
              "peak_memory": human(peak), "estimate": human(estimate), "peak_over_estimate": peak / estimate}
    result["ok"] = syncs is not None and syncs.startswith("0 ")
    return result


def _sync_check(run_dir: Path) -> str | None:
    """The worker's `sync check:` line (rank 0's log), without its prefix."""
    for log in sorted((run_dir / "logs").glob("*")):
        for line in log.read_text(errors="replace").splitlines():
            if "sync check: " in line:
                return line.split("sync check: ", 1)[1]
    return None


def stall_case(runner: Runner, case: dict) -> dict:
    """Seconds the steps after the save took beyond the median step before it (sync: the write; async: the
    staging and the background writer's competition), summed with their signs so that noise cancels."""
    run_dir, _ = runner.run(case, time.time())
    rows = train_rows(run_dir)
    times = [rows[s]["time"] for s in sorted(rows)]
    intervals = {s: times[i] - times[i - 1] for i, s in enumerate(sorted(rows)) if i}
    usual = statistics.median(v for s, v in intervals.items() if 3 < s <= SAVE_AT)
    stall = sum(v - usual for s, v in intervals.items() if s > SAVE_AT)
    return {"stall_s": stall, "step_s": usual, "ok": True}


def packed_case(runner: Runner, case: dict) -> dict:
    """bench/packing.py --attention in its own process (its GPU memory goes with it)."""
    timeout = min(case["timeout"], runner.deadline - time.time())
    subprocess.run([PYTHON, str(ROOT / "bench" / "packing.py"), "--attention", "--rounds", "2"], cwd=ROOT / "bench",
                   env=ENV_GPU, check=True, capture_output=True, timeout=timeout)
    result = json.loads((RESULTS / "packing_attention.json").read_text())
    result["ok"] = max(result["max_loss_gap"].values()) <= 1e-3
    return result


def packed_speed_case(runner: Runner, case: dict) -> dict:
    """bench/packing.py --cuda: the same SFT rows packed and padded, useful tokens/s (target >= 1.5x)."""
    timeout = min(case["timeout"], runner.deadline - time.time())
    subprocess.run([PYTHON, str(ROOT / "bench" / "packing.py"), "--cuda", "--rounds", "1"], cwd=ROOT / "bench",
                   env=ENV_GPU, check=True, capture_output=True, timeout=timeout)
    speed = json.loads((RESULTS / "packing.json").read_text())["median_tokens_per_s"]
    ratio = speed["packing"] / speed["padding"]
    return {"packed_tokens_per_s": speed["packing"], "padded_tokens_per_s": speed["padding"],
            "packed_over_padded": ratio, "ok": ratio >= 1.5}


KINDS = {"engine": engine_case, "throughput": throughput_case, "stall": stall_case, "packed": packed_case,
         "packed_speed": packed_speed_case}


def _cuda_devices() -> list[str]:
    """The CUDA devices torch sees, asked in a child process: this one keeps no CUDA context (it would count
    in the memory the runs measure)."""
    code = "import torch; [print(torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]"
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()


def run_on_gpu(selected: list[dict], budget: float) -> list[dict]:
    names = _cuda_devices()
    gpus, name = len(names), names[0]
    started = time.time()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(Path(tmp), gpus, started + budget)
        for case in selected:
            began = time.time()
            try:
                outcome = KINDS[case["kind"]](runner, case)
            except Exception as exc:  # noqa: BLE001 - a failed case is a result; the next case runs
                outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[-2000:]}
            results.append({"case": case["name"], "seconds": round(time.time() - began, 1), **outcome})
            print(f"{case['name']:<24} {'ok' if outcome['ok'] else 'FAILED'} ({results[-1]['seconds']} s)", flush=True)
            _write(results, name, gpus, started)
    return results


def _write(results: list[dict], device: str, gpus: int, started: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stall = {r["case"]: r.get("stall_s") for r in results if "stall_s" in r}
    summary = {"device": device, "gpus": gpus, "when": time.strftime("%Y-%m-%d %H:%M"),
               "seconds": round(time.time() - started, 1), "cases": results}
    if len(stall) == 2 and all(v is not None for v in stall.values()):
        summary["async_over_sync_stall"] = stall["1B checkpoint async"] / max(stall["1B checkpoint sync"], 1e-9)
    (RESULTS / "gpu.json").write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / "gpu.md").write_text(f"measured on {gpus}x {device}, {summary['when']}\n\n" + _table(results) + "\n")


def _table(results: list[dict]) -> str:
    def detail(r: dict) -> str:
        if "error" in r:
            return r["error"].splitlines()[0][:100]
        if "tokens_per_s" in r and "peak_memory" in r:
            mfu = f", MFU {r['mfu']:.1%}" if r["mfu"] is not None else ""
            return (f"{r['tokens_per_s']:,.0f} tok/s{mfu}; peak {r['peak_memory']} vs estimate {r['estimate']} "
                    f"({r['peak_over_estimate']:.2f}x); syncs: {r['sync_check']}")
        if "packed_over_padded" in r:
            return (f"packed {r['packed_tokens_per_s']:,.0f} vs padded {r['padded_tokens_per_s']:,.0f} useful tok/s "
                    f"({r['packed_over_padded']:.2f}x)")
        if "stall_s" in r:
            return f"stall {r['stall_s']:.2f} s (step {r['step_s']:.2f} s)"
        if "max_loss_gap" in r:
            return "; ".join(f"{p} {v:,.0f} tok/s, gap {r['max_loss_gap'][p]:.1e}"
                             for p, v in r["median_tokens_per_s"].items())
        resume = ""
        if "resume_bit_identical" in r:
            same = "bit-identical" if r["resume_bit_identical"] else f"max loss diff {r['resume_max_loss_diff']:.1e}"
            resume = f"; resume {same}"
        return (f"loss {r['first_loss']:.2f} -> {r['last_loss']:.2f}, {len(r['checkpoints'])} checkpoints, export "
                f"{'loads' if r['export_loads'] else 'FAILS'}{resume}; first step {r['first_step_s']:.0f} s")

    return table([[r["case"], "ok" if r["ok"] else "FAILED", f"{r['seconds']:.0f}", detail(r)] for r in results],
                 ["case", "result", "s", "measured"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=480, help="seconds for all cases together")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = parser.parse_args()
    selected = [c for c in cases() if not args.only or c["name"] in args.only]
    failed = check_recipes(selected)
    if not _cuda_devices():
        print(f"no CUDA device here: checked the {len(selected)} GPU cases' recipes with llaunch validate and plan "
              f"({failed} refused); run this on a GPU machine for the measurements")
        return 1 if failed else 0
    results = run_on_gpu(selected, args.budget)
    print(_table(results))
    print(f"results: {RESULTS / 'gpu.json'}, {RESULTS / 'gpu.md'}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
