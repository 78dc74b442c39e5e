"""The run directory: the one place a run's state lives, and the one definition of its files.

Every command takes a recipe or a run dir. This module names the files and owns the schemas of the
ones llaunch and the worker exchange: result.json (how the run ended), objective.json (what `eval` and
`export` need to rebuild the task) and the rows of metrics.jsonl. It imports no torch and no pydantic,
so the job script can ask it how a run ended: `python -m launcher.rundir RUN_DIR` prints
`STATUS EXIT_CODE` (e.g. `completed 0`, `failed 2`), or nothing when the run left no result.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.plan.launch_plan import LaunchPlan
    from launcher.recipe.schema import Recipe

RECIPE_FILE = "recipe.yaml"
RESULT_FILE = "result.json"
OBJECTIVE_FILE = "objective.json"  # in the run dir and in every exported model directory
METRICS_FILE = "metrics.jsonl"
# Created by a batch script on a preemption signal (or by hand): every rank checkpoints at the
# next step boundary and exits cleanly. Launchers remove it before they start the workers.
STOP_FILE = "STOP"


@dataclass(frozen=True)
class Result:
    """result.json, written by rank 0 when the run ends: completed, interrupted (stopped on request) or failed."""

    status: str
    step: int | None = None
    exit_code: int | None = None  # failed: the exit code the launcher reports (the workers themselves exit 0)
    error: str | None = None
    best_step: int | None = None
    best_metric: str | None = None
    best_value: float | None = None
    early_stopped: bool = False
    export: str | None = None

    @property
    def exit_status(self) -> int:
        """What `llaunch run` and the job script exit with for this result."""
        return (self.exit_code or 1) if self.status == "failed" else 0

    def to_json(self) -> str:
        written = {k: v for k, v in asdict(self).items() if v is not None and v is not False}
        return json.dumps(written, indent=1) + "\n"


@dataclass(frozen=True)
class ObjectiveFile:
    """objective.json: the objective, its head's labels, the data settings and eval settings it was trained with."""

    objective: str
    labels: list[str] | None = None
    data: dict[str, Any] | None = None  # the recipe's data section without its file lists
    eval: dict[str, Any] | None = None


DATA_FILE_KEYS = ("train", "eval", "eval_fraction")  # data settings that name files, not how to read them


def write_objective(directory: Path, objective: str, labels: list[str] | None, data: dict[str, Any],
                    eval: dict[str, Any]) -> Path:
    """objective.json into `directory` (a run dir or an export); `data` is the recipe's data section."""
    settings = {k: v for k, v in data.items() if k not in DATA_FILE_KEYS}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / OBJECTIVE_FILE
    write_text_atomic(path, json.dumps(asdict(ObjectiveFile(objective, labels, settings, eval)), indent=1) + "\n")
    return path


def read_objective(directory: Path) -> ObjectiveFile | None:
    """The directory's objective.json, None if it has none; a damaged one is a UserError."""
    data = _read_json(directory / OBJECTIVE_FILE)
    if data is None:
        return None
    known = {f.name for f in fields(ObjectiveFile)}
    if not isinstance(data, dict) or "objective" not in data:
        raise UserError(f"{directory / OBJECTIVE_FILE}: no \"objective\" key")
    return ObjectiveFile(**{k: v for k, v in data.items() if k in known})


def metrics_line(kind: str, step: int, values: dict[str, Any]) -> str:
    """One metrics.jsonl row: {"kind": "train"|"eval", "step": N, "time": unix seconds, **values}."""
    return json.dumps({"kind": kind, "step": step, "time": round(time.time(), 3), **values}) + "\n"


def _rows(lines: list[str]) -> list[dict[str, Any]]:
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a tail read, or half written by a live run
        if isinstance(row, dict) and "kind" in row and "step" in row:
            rows.append(row)
    return rows


@dataclass(frozen=True)
class RunDir:
    path: Path

    recipe_file = property(lambda self: self.path / RECIPE_FILE)
    plan_file = property(lambda self: self.path / "plan.json")
    launch_script = property(lambda self: self.path / "launch.sh")
    logs = property(lambda self: self.path / "logs")
    tensorboard = property(lambda self: self.path / "tensorboard")
    metrics = property(lambda self: self.path / METRICS_FILE)
    checkpoints = property(lambda self: self.path / "checkpoints")
    export = property(lambda self: self.path / "export")
    tokenizer = property(lambda self: self.path / "tokenizer")
    result_file = property(lambda self: self.path / RESULT_FILE)
    stop_file = property(lambda self: self.path / STOP_FILE)
    jobs_file = property(lambda self: self.path / "slurm.json")  # the SLURM job ids, newest last

    @classmethod
    def create(cls, recipe: Recipe) -> RunDir:
        root = Path(recipe.output.dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            path = root / f"{recipe.name}-{stamp}{suffix}"
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        else:
            raise UserError(f"{root}: could not create a new run directory")
        run = cls(path.resolve())
        run.logs.mkdir()
        run.write_recipe(recipe)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(Path(path).resolve())
        if not run.recipe_file.is_file():
            raise UserError(f"{path}: not a run directory (no recipe.yaml); runs live under output.dir, e.g. runs/")
        return run

    @classmethod
    def find(cls, folder: str) -> list[RunDir]:
        """The run dirs directly under `folder` (output.dir), oldest first."""
        root = Path(folder)
        if not root.is_dir():
            raise UserError(f"{folder}: no such directory (runs live under output.dir, e.g. runs/)")
        found = [p for p in root.iterdir() if (p / RECIPE_FILE).is_file()]
        return [cls(p.resolve()) for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def write_recipe(self, recipe: Recipe) -> None:
        import yaml

        text = yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True), sort_keys=False)
        write_text_atomic(self.recipe_file, "# Resolved recipe of this run (written by llaunch)\n" + text)

    def load_recipe(self, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
        from launcher.recipe.loading import load_recipe

        return load_recipe(self.recipe_file, overrides)

    def raw_recipe(self) -> dict[str, Any]:
        """recipe.yaml as plain data, unvalidated: a run dir written by an older llaunch still shows."""
        import yaml

        return yaml.safe_load(self.recipe_file.read_text()) or {}

    def write_plan(self, plan: LaunchPlan) -> None:
        """plan.json and the plan's files (launch.sh or job.sbatch, hostfile)."""
        write_text_atomic(self.plan_file, plan.to_json())
        for name, text in plan.files.items():
            write_text_atomic(self.path / name, text)
            if name == plan.script_name:
                (self.path / name).chmod(0o755)

    def write_result(self, result: Result) -> None:
        write_text_atomic(self.result_file, result.to_json())

    def read_result(self) -> Result | None:
        """How the run ended; None while it runs (or if it died without a word)."""
        data = _read_json(self.result_file)
        if data is None:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise UserError(f"{self.result_file}: no \"status\" key")
        known = {f.name for f in fields(Result)}
        return Result(**{k: v for k, v in data.items() if k in known})

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every row of metrics.jsonl, in the order written (a resumed run logs some steps again)."""
        if not self.metrics.exists():
            return []
        return _rows(self.metrics.read_text(encoding="utf-8", errors="replace").splitlines())

    def last_train_row(self) -> dict[str, Any] | None:
        """The newest train row of metrics.jsonl (reads only the file's tail)."""
        if not self.metrics.exists():
            return None
        with open(self.metrics, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
            lines = handle.read().decode("utf-8", "replace").splitlines()
        train = [row for row in _rows(lines) if row["kind"] == "train"]
        return train[-1] if train else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def display_path(path: str | Path) -> str:
    """A path as commands print it: relative to the working directory when it lies under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    """`python -m launcher.rundir RUN_DIR`: the job script's question, how did the run end."""
    try:
        result = RunDir(Path(argv[0])).read_result()
    except UserError as exc:
        print(f"llaunch: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(result.status, result.exit_status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
