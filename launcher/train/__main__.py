"""Worker entry point: `python -m launcher.train RUN_DIR` (started by torchrun, srun or directly)."""

from __future__ import annotations

import sys

import torch

from launcher.errors import UserError
from launcher.rundir import RunDir
from launcher.train.distributed import setup, teardown
from launcher.train.loop import log_to, run_training, write_result
from launcher.train.quiet import quiet_libraries


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m launcher.train RUN_DIR", file=sys.stderr)
        return 2
    try:
        run = RunDir.open(argv[0])
        recipe = run.load_recipe()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    quiet_libraries(cpu=recipe.resources.device == "cpu" or not torch.cuda.is_available())
    d = setup(recipe.resources.device)
    log = log_to(run.logs / f"rank-{d.rank}.log", echo=d.is_main)
    try:
        result = run_training(run, d, log)
        if d.is_main:
            write_result(run, result)  # recorded before exit: a crash at interpreter exit loses nothing
    except UserError as exc:
        # A known failure (bad data, disk full) is reported through result.json and the workers exit 0:
        # torchrun restarts are for crashes, and retrying a deterministic error only burns GPU-hours.
        # The launcher (and the sbatch script) turn the recorded exit code back into theirs.
        log(f"error: {exc}")
        if d.is_main:
            print(f"error: {exc}", file=sys.stderr)
            write_result(run, {"status": "failed", "error": str(exc), "exit_code": exc.exit_code})
    finally:
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
