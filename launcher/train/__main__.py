"""Worker entry point: `python -m launcher.train RUN_DIR` (started by torchrun, srun or directly)."""

from __future__ import annotations

import sys

import transformers

from launcher.errors import UserError
from launcher.rundir import RunDir
from launcher.train.distributed import setup, teardown
from launcher.train.loop import log_to, run_training, write_result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m launcher.train RUN_DIR", file=sys.stderr)
        return 2
    transformers.utils.logging.disable_progress_bar()
    try:
        run = RunDir.open(argv[0])
        recipe = run.load_recipe()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    d = setup(recipe.resources.device)
    log = log_to(run.logs / f"rank-{d.rank}.log", echo=d.is_main)
    try:
        result = run_training(run, d, log)
        if d.is_main:
            write_result(run, result)  # recorded before exit: a crash at interpreter exit loses nothing
    except UserError as exc:
        log(f"error: {exc}")
        if d.is_main:
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
