"""Experiment trackers beside TensorBoard: Weights & Biases (`logging.wandb`) and MLflow (`logging.mlflow`).

Rank 0 only. Neither library is imported unless its key is set. The run's config is the resolved recipe.
Each tracker's run id is kept in the run directory (trackers.json), so a run that is stopped, preempted,
requeued or resumed continues the same tracker run instead of starting a new one per start. Credentials
come from the environment by name (WANDB_API_KEY, MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD), read by
the libraries themselves; nothing here writes them anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from launcher.errors import UserError

IDS_FILE = "trackers.json"
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}  # recipe key -> module


def check_installed(recipe) -> None:
    """A tracker asked for whose package is missing: a one-line error before anything starts (no import).
    Not asked where another Python runs the workers (a SLURM job's container or slurm.python)."""
    if recipe.resources.launcher == "slurm" and (recipe.slurm.container or recipe.slurm.python):
        return
    for key, module in PACKAGES.items():
        if getattr(recipe.logging, key) is not None and importlib.util.find_spec(module) is None:
            package = "mlflow-skinny" if key == "mlflow" else key
            raise UserError(f"logging.{key} is set but the {module} package is not installed; "
                            f"`pip install {package}` (or `pip install 'llaunch[trackers]'`), or remove logging.{key}")


def open_trackers(run_dir: Path) -> Trackers | None:
    """The trackers the run's recipe asks for, or None (then nothing is imported)."""
    from launcher.rundir import RunDir

    recipe = RunDir.open(run_dir).load_recipe()
    if recipe.logging.wandb is None and recipe.logging.mlflow is None:
        return None
    return Trackers(run_dir, recipe)


class Trackers:
    """The trackers a recipe asks for, opened on the run directory."""

    def __init__(self, run_dir: Path, recipe):
        self.run_dir, self.recipe = run_dir, recipe
        self._ids = self._read_ids()
        self._wandb = self._open_wandb() if recipe.logging.wandb is not None else None
        self._mlflow = self._open_mlflow() if recipe.logging.mlflow is not None else None
        self._write_ids()

    def _read_ids(self) -> dict[str, str]:
        try:
            return json.loads((self.run_dir / IDS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write_ids(self) -> None:
        if not self._ids:
            return
        tmp = self.run_dir / f".{IDS_FILE}.tmp"
        tmp.write_text(json.dumps(self._ids, indent=1) + "\n")
        os.replace(tmp, self.run_dir / IDS_FILE)

    def _config(self) -> dict[str, Any]:
        return self.recipe.model_dump(mode="json", by_alias=True)

    def _open_wandb(self):
        import wandb

        spec = self.recipe.logging.wandb
        run_id = self._ids.setdefault("wandb", uuid.uuid4().hex[:12])
        return wandb.init(project=spec.project, entity=spec.entity, name=spec.name or self.run_dir.name,
                          tags=spec.tags or None, mode=spec.mode, id=run_id, resume="allow",
                          dir=str(self.run_dir), config=self._config())

    def _open_mlflow(self):
        import mlflow

        spec = self.recipe.logging.mlflow
        client = mlflow.MlflowClient(tracking_uri=spec.tracking_uri)
        run_id = self._ids.get("mlflow")
        if run_id is None:
            found = client.get_experiment_by_name(spec.experiment)
            experiment = found.experiment_id if found else client.create_experiment(spec.experiment)
            run_id = client.create_run(experiment, run_name=self.run_dir.name).info.run_id
            for key, value in _flat(self._config()).items():
                client.log_param(run_id, key, value)
            self._ids["mlflow"] = run_id
        else:
            client.update_run(run_id, status="RUNNING")
        return client

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        scalars = {f"{kind}/{k}": float(v) for k, v in values.items() if isinstance(v, (int, float))}
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)
        if self._mlflow is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._mlflow.log_batch(self._ids["mlflow"], metrics=[Metric(k, v, now, step) for k, v in scalars.items()])

    def close(self, ending: str) -> None:
        """A failed start is marked failed (W&B exit code 1, MLflow FAILED), a stopped or preempted one KILLED in
        MLflow (a resume sets it RUNNING again), a completed one finished."""
        if self._wandb is not None:
            self._wandb.finish(exit_code=1 if ending == "failed" else 0)
        if self._mlflow is not None:
            status = {"completed": "FINISHED", "interrupted": "KILLED"}.get(ending, "FAILED")
            self._mlflow.set_terminated(self._ids["mlflow"], status=status)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested recipe keys as dotted MLflow params (values cut to MLflow's 6000-character limit)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = json.dumps(value)[:6000]
    return out
