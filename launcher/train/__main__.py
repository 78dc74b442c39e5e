"""Worker entry point: `python -m launcher.train RUN_DIR` (started by torchrun, srun or directly)."""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import torch

from launcher.errors import UserError
from launcher.rundir import Result, RunDir
from launcher.train.prepare_ahead import PreparingAhead
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
    quiet_libraries(cpu=recipe.resources.device == "cpu" or not torch.cuda.is_available(),
                    quantized=recipe.method.type == "qlora")
    preparing = PreparingAhead(run, recipe)
    # the model code is imported only now, while the data is prepared on another core
    from launcher.train.distributed import setup, teardown
    from launcher.train.trainer import Trainer

    d = setup(recipe.resources.device)
    log = log_to(run.logs / f"rank-{d.rank}.log", echo=d.is_main)
    try:
        preparing.wait(log)
        result = Trainer(run, d, log).run()
        if d.is_main:
            run.write_result(Result(**result))  # recorded before exit: a crash at interpreter exit loses nothing
    except UserError as exc:
        # A known failure (bad data, disk full) is reported through result.json and the workers exit 0:
        # torchrun restarts are for crashes, and retrying a deterministic error only burns GPU-hours.
        # The launcher (and the sbatch script) turn the recorded exit code back into theirs.
        log(f"error: {exc}")
        if d.is_main:
            print(f"error: {exc}", file=sys.stderr)
            run.write_result(Result("failed", error=str(exc), exit_code=exc.exit_code))
    except Exception as exc:
        # A crash: the first rank to fail records it (the others then fail on the lost peer), and the
        # process exits non-zero so torchrun ends the other workers (or restarts them, if asked to)
        log("crash:\n" + traceback.format_exc())
        error = f"rank {d.rank}: {type(exc).__name__}: {exc}".splitlines()[0]
        print(f"error: {error} (traceback in {run.logs / f'rank-{d.rank}.log'})", file=sys.stderr)
        record_first_failure(run, Result("failed", error=error, exit_code=1))
        return 1
    finally:
        teardown()
    return 0


def record_first_failure(run: RunDir, result: Result) -> None:
    """result.json unless a rank already wrote it (the launchers remove it before each start)."""
    tmp = run.result_file.with_name(f".result.{os.getpid()}.tmp")
    tmp.write_text(result.to_json())
    try:
        os.link(tmp, run.result_file)  # atomic, and fails if the file exists: the first failure wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def log_to(path: Path, echo: bool):
    handle = open(path, "a", encoding="utf-8", buffering=1)

    def log(message: str) -> None:
        handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        if echo:
            print(message, flush=True)

    return log


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
