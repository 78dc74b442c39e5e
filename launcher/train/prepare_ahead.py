"""Rank 0 prepares new data in a forked child while the worker goes on importing the model code.

The worker's imports keep one core busy for seconds (transformers' modeling code alone is about 2 s here);
forked once torch and the data code are imported, a child tokenizes on another core meanwhile, so a fresh
dataset costs a run little more start-up than a prepared one. The child records the cache entry and exits;
prepare_on_rank0 then finds it. A failed child is not reported from here: the worker prepares again in its
own process and stops with that error, in one line, on every rank (its lines stay in logs/prepare.log).
The child uses no GPU (CUDA cannot be used in a child forked after the parent touched it; the parent can).
"""

from __future__ import annotations

import os
import sys
import traceback

from launcher.data import cache_index
from launcher.data.prepare import prepare
from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.rundir import RunDir


class PreparingAhead:
    def __init__(self, run: RunDir, recipe: Recipe):
        self.output = run.logs / "prepare.log"
        self.pid = None
        if os.environ.get("RANK", "0") != "0" or _prepared(recipe):
            return  # other ranks open what rank 0 names; prepared data needs nothing
        sys.stdout.flush()
        sys.stderr.flush()  # nothing buffered here may be written twice, by the child too
        self.pid = os.fork()
        if self.pid == 0:
            _prepare_in_child(recipe, self.output)

    def wait(self, log) -> None:
        """Until the child ended; its lines go to the log when it succeeded."""
        if self.pid is None:
            return
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            for line in self.output.read_text(encoding="utf-8").splitlines():
                log(line)


def _prepared(recipe: Recipe) -> bool:
    """True also when the inputs cannot be read: the worker's own preparation says what is wrong with them."""
    try:
        return cache_index.lookup(recipe) is not None
    except (OSError, UserError):
        return True


def _prepare_in_child(recipe: Recipe, output) -> None:
    code = 1
    try:
        out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        cache_index.record(recipe, prepare(recipe).dir)
        code = 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except BaseException:  # noqa: BLE001 (whatever it was, the worker meets it again and reports it)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # not the worker's exit handlers: they belong to the parent
