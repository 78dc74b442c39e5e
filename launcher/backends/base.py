"""The backend interface: how a run is started and watched, whatever starts it.

As torchx's Scheduler separates `submit_dryrun` from `schedule`, `dryrun` only plans (pure data, also
what `llaunch plan` shows) and `launch` executes that plan. `status`, `log_files` and `cancel` answer
from the run dir, plus the scheduler's word where there is one. Every part here imports no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from launcher.plan import LaunchPlan, make_plan
from launcher.recipe.schema import Recipe
from launcher.rundir import RunDir


@dataclass(frozen=True)
class RunState:
    state: str  # the result's status upper-cased (COMPLETED, ...), UNFINISHED, or the scheduler's word
    job: str | None = None
    reason: str = ""
    restarts: int = 0
    finished: bool = False  # nothing more will be written
    queued: bool = False  # a scheduler holds the job (pending, running, requeued): do not start it again
    prepare: dict | None = None  # a SLURM array job preparing the data first: {job, state, tasks, failed}


class Backend(ABC):
    """What every backend does. By default the run dir tells everything: a run started on this machine."""

    queued = False  # True: launch hands the job to a scheduler's queue and returns at once

    def dryrun(self, recipe: Recipe, run_dir: str) -> LaunchPlan:
        """What would be started (argv, environment, script text); raises UserError if it cannot work."""
        return make_plan(recipe, run_dir)

    def check_here(self) -> None:
        """Raise UserError if this machine cannot launch at all (before anything is prepared or written)."""

    @abstractmethod
    def launch(self, run: RunDir, plan: LaunchPlan) -> int | None:
        """Start the plan written into `run`: the run's exit code, or None once a scheduler has queued it."""

    def status(self, run: RunDir, ask_scheduler: bool = True) -> RunState:
        result = run.read_result()
        if result is None:
            return RunState("UNFINISHED")
        return RunState(result.status.upper(), finished=True)

    def log_files(self, run: RunDir) -> list[Path]:
        """The run's output files in reading order."""
        return sorted(run.logs.glob("rank-*.log"), key=lambda p: int(p.stem.split("-")[1]))

    def cancel(self, run: RunDir) -> str:
        """Stop the run (the workers checkpoint first where they can); what was done, for the user."""
        run.stop_file.touch()
        return f"asked the workers of {run.path} to stop: they checkpoint at the next step and exit"


def backend_for(target: Recipe | RunDir) -> Backend:
    """The backend of a recipe's resources.launcher, or of the launcher a run dir was started with."""
    if isinstance(target, RunDir):
        launcher = (target.raw_recipe().get("resources") or {}).get("launcher", "torchrun")
    else:
        launcher = target.resources.launcher
    if launcher == "slurm":
        from launcher.backends.slurm import SlurmBackend

        return SlurmBackend()
    from launcher.backends.local import LocalBackend

    return LocalBackend()
