"""`llaunch report RUN_DIR`: curves of loss, eval metrics, learning rate and throughput from
metrics.jsonl as one PNG, and a short summary of the run. No torch."""

from __future__ import annotations

import json
from pathlib import Path

from launcher.checkpoints import complete_checkpoints
from launcher.rundir import RunDir


def _rows(run: RunDir) -> list[dict]:
    if not run.metrics.exists():
        return []
    return [json.loads(line) for line in run.metrics.read_text().splitlines() if line.strip()]


def _series(rows: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric; a step logged again after a resume keeps its newest value."""
    latest = {row["step"]: row[key] for row in rows if row["kind"] == kind and isinstance(row.get(key), (int, float))}
    steps = sorted(latest)
    return steps, [latest[step] for step in steps]


def render(run: RunDir, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(run)
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


def summary(run: RunDir) -> str:
    rows = _rows(run)
    recipe = run.load_recipe()
    result = run.read_result() or {}
    train = [row for row in rows if row["kind"] == "train"]
    evals = [row for row in rows if row["kind"] == "eval"]
    lines = [f"run        {run.path}", f"status     {result.get('status', 'unknown (running or crashed)')}"
             f" at step {result.get('step', train[-1]['step'] if train else 0)}/{recipe.train.max_steps}"]
    if train:
        minutes = (train[-1]["time"] - rows[0]["time"]) / 60
        tokens = train[-1].get("consumed_samples", 0) * recipe.data.seq_len
        lines.append(f"time       {minutes:.1f} min logged; {tokens:,} tokens seen; last loss {train[-1]['loss']:.4f}")
    if evals:
        last = {k: v for k, v in evals[-1].items() if k not in ("kind", "time")}
        lines.append("final eval " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in last.items()))
    complete = complete_checkpoints(run.checkpoints)
    best = [path for _, path in complete if (path / "BEST").exists()]
    if complete:
        lines.append(f"checkpoint newest complete {complete[-1][1].name}" + (f"; best {best[-1].name}" if best else ""))
    return "\n".join(lines)
