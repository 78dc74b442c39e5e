"""What a run did: `llaunch report RUN_DIR` draws loss, eval metrics, learning rate and throughput from
metrics.jsonl as one PNG and prints the run's summary, which `llaunch run` prints when a run ends. No torch."""

from __future__ import annotations

import math
from pathlib import Path

from launcher.checkpoints import best_checkpoint, complete_checkpoints
from launcher.rundir import RunDir, display_path


def _series(rows: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric; a step logged again after a resume keeps its newest value."""
    latest = {row["step"]: row[key] for row in rows if row["kind"] == kind and isinstance(row.get(key), (int, float))}
    steps = sorted(latest)
    return steps, [latest[step] for step in steps]


def render(run: RunDir, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.read_metrics()
    eval_keys = sorted({k for row in rows if row["kind"] == "eval" for k in row} - {"kind", "step", "time", "loss"})
    panels = [("loss", [("train", "loss"), ("eval", "loss")]), ("learning rate", [("train", "lr")]),
              ("tokens / s", [("train", "tokens_per_s")])]
    if eval_keys:
        panels.append(("eval metrics", [("eval", key) for key in eval_keys]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for kind, key in series:
            steps, values = _series(rows, kind, key)
            if steps:
                ax.plot(steps, values, marker="o" if kind == "eval" else None, markersize=3, label=f"{kind} {key}")
        if [key for _, key in series] == ["perplexity"]:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(run.path.name)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _speed(train: list[dict]) -> list[str]:
    """Median tokens/s (all processes together) and MFU over the logged windows, the first one left out when
    there are others (it holds the start-up: compilation, caches, the first allocations)."""
    windows = train[1:] or train
    speeds = sorted(row["tokens_per_s"] for row in windows if "tokens_per_s" in row)
    if not speeds:
        return []
    line = f"{'speed':<10} {speeds[len(speeds) // 2]:,.0f} tokens/s"
    mfus = sorted(row["mfu"] for row in windows if "mfu" in row)
    if mfus:
        line += f", MFU {mfus[len(mfus) // 2]:.1%}"
    return [line + f" (median of {len(speeds)} logged window(s))"]


def _sources(row: dict) -> list[str]:
    """What each source of a weighted mixture gave so far: samples and tokens."""
    samples, tokens = row.get("consumed_by_source"), row.get("tokens_by_source") or {}
    if not samples:
        return []
    return [f"{'sources':<10} " + "; ".join(f"{name} {count:,} samples, {tokens.get(name, 0):,} tokens"
                                          for name, count in samples.items())]


def summary(run: RunDir, seconds: float | None = None, code: int | None = None) -> str:
    """What a run did, from its run dir: printed by `llaunch report`, and at the end of `llaunch run`
    (then headed by the wall time and exit code of that start)."""
    recipe = run.load_recipe()
    result = run.read_result()
    rows = run.read_metrics()
    train = [row for row in rows if row["kind"] == "train"]
    evals = [row for row in rows if row["kind"] == "eval"]
    rel = display_path(run.path)
    step = result.step if result and result.step is not None else (train[-1]["step"] if train else 0)
    if seconds is None:
        status = result.status if result else "unknown (running or crashed)"
        lines = [f"{'status':<10} {status} at step {step}/{recipe.train.max_steps}"]
    else:
        status = result.status if result else "failed"
        lines = ["", f"run {status} at step {step}/{recipe.train.max_steps} "
                 f"in {int(seconds // 60)}m{int(seconds % 60):02d}s (exit code {code})"]
    lines.append(f"{'run dir':<10} {rel}")
    if train:
        minutes = (train[-1]["time"] - rows[0]["time"]) / 60
        tokens = train[-1].get("consumed_samples", 0) * recipe.data.seq_len
        lines.append(f"{'time':<10} {minutes:.1f} min logged; {tokens:,} tokens seen; last loss {train[-1]['loss']:.4f}")
        lines += _speed(train) + _sources(train[-1])
    if evals:
        first, last = evals[0], evals[-1]
        ppl = f", perplexity {math.exp(min(last['loss'], 50)):.2f}" if "perplexity" in last else ""
        lines.append(f"{'eval loss':<10} {first['loss']:.4f} (step {first['step']}) -> {last['loss']:.4f} "
                     f"(step {last['step']}{ppl})")
        metric = recipe.eval.metric
        if metric and metric not in ("loss", "perplexity") and metric in last:
            best = f"; best {result.best_value:.4f} at step {result.best_step}" if result and result.best_step is not None else ""
            lines.append(f"eval {metric} {first[metric]:.4f} (step {first['step']}) -> {last[metric]:.4f} "
                         f"(step {last['step']}{best})")
        final = {k: v for k, v in last.items() if k not in ("kind", "time")}
        lines.append("final eval " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in final.items()))
    if result and result.early_stopped:
        lines.append(f"stopped early: {recipe.early_stopping.metric} stopped improving (early_stopping)")
    checkpoints = complete_checkpoints(run.checkpoints)
    if checkpoints:
        lines.append(f"{'checkpoint':<10} {display_path(checkpoints[-1][1])} (newest complete of {len(checkpoints)})")
        best_found = best_checkpoint(run.checkpoints)
        if best_found:
            lines.append(f"{'best':<10} {display_path(best_found[1])} (by eval.metric {recipe.eval.metric}; "
                         f"llaunch export {rel} --best)")
    if result and result.export:
        lines.append(f"{'export':<10} {display_path(result.export)} (transformers from_pretrained)")
    lines.append(f"{'metrics':<10} {display_path(run.metrics)}")
    if recipe.logging.tensorboard:
        lines.append(f"{'tensorboard':<10} tensorboard --logdir {display_path(run.tensorboard)}")
    lines.append(f"{'logs':<10} {display_path(run.logs)}")
    if status != "completed":
        lines.append(f"continue with: llaunch resume {rel}")
    return "\n".join(lines)
