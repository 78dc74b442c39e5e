"""Where checkpoints are and which are complete: shared by the worker and the light CLI (no torch)."""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "COMPLETE"
BEST = "BEST"  # marker in the checkpoint dir that is best by eval.metric (kept by keep_last rotation)
DEEPSPEED_DIR = "deepspeed"  # step-NNNNNN/deepspeed/: a DeepSpeed engine's own files (its checkpoint tag)
_STEP = re.compile(r"^step-(\d{6,})$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def _steps(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return sorted(found)


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    return [(step, path) for step, path in _steps(root) if (path / MARKER).is_file()]


def incomplete_checkpoints(root: Path) -> list[Path]:
    return [path for _, path in _steps(root) if not (path / MARKER).is_file()]


def latest_complete(root: Path) -> tuple[int, Path] | None:
    complete = complete_checkpoints(root)
    return complete[-1] if complete else None


def best_checkpoint(root: Path) -> tuple[int, Path] | None:
    """The complete checkpoint marked BEST (the newest, should a crash have left two marks)."""
    marked = [(step, path) for step, path in complete_checkpoints(root) if (path / BEST).is_file()]
    return marked[-1] if marked else None


def describe(root: Path, verify: bool = False) -> list[dict]:
    """One row per checkpoint dir: step, bytes, complete, whether resume would use it, whether it is the best;
    with `verify`, also "damaged": the first file that does not read back as written (None when all do)."""
    from launcher.checksums import check

    best = best_checkpoint(root)
    rows = []
    for step, path in _steps(root):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        complete = (path / MARKER).is_file()
        row = {"step": step, "path": str(path), "bytes": size, "complete": complete,
               "best": best is not None and best[1] == path}
        if verify:
            row["damaged"] = check(path) if complete else None
        rows.append(row)
    usable = [row for row in rows if row["complete"] and not row.get("damaged")]
    for row in rows:
        row["resume"] = bool(usable) and row is usable[-1]
    return rows
