"""The hang watchdog: a thread per rank that ends the run when a step runs far longer than the recent ones.

The limit is resources.hang_timeout: `factor` x the median of the last steps, at least `min_seconds`;
until 3 steps are timed, and around evaluations and saves, the generous `startup_seconds` (a step's log
line is timed with the step). The
rank that sees its step overrun writes its Python stacks to logs/hang-step-N-rank-R.txt, records the hang
in result.json (the first failure wins) and leaves logs/HANG, which every other live rank's watchdog sees
within a second: each writes its own stacks and all exit with HANG_EXIT_CODE, so the job ends instead
of waiting out the process group's 60-minute timeout (torchrun restarts or `llaunch resume` continue from
the newest complete checkpoint). A rank stopped with SIGSTOP writes nothing; the others' stacks show where
they waited for it.
"""

from __future__ import annotations

import faulthandler
import os
import statistics
import sys
import threading
import time
from collections import deque

from launcher.recipe.cluster_schema import HangSpec
from launcher.rundir import Result, RunDir

HANG_EXIT_CODE = 3
STALL_AT_STEP = "LLAUNCH_STALL_AT_STEP"  # tests: "N:RANK" makes that rank stall in step N (sleeps for good)
TIMED_STEPS = 3  # steps timed before the tight limit applies (the first ones compile, warm caches)
WINDOW = 20
POLL = 0.5
GRACE = 3.0  # seconds the first rank waits for the others to write their stacks before it exits


class Watchdog:
    def __init__(self, spec: HangSpec, run: RunDir, rank: int, log):
        self.spec, self.run, self.rank, self.log = spec, run, rank, log
        self._times: deque[float] = deque(maxlen=WINDOW)
        self._step, self._began, self._limit = 0, time.monotonic(), spec.startup_seconds
        self._flag, self._since = run.logs / "HANG", time.time()  # a flag older than this start is an old hang's
        self._stall = _injected_stall(rank)
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="hang-watchdog", daemon=True).start()

    def started(self, step: int) -> None:
        """A step begins: from now it has the tight limit (once the first steps are timed)."""
        warm = len(self._times) >= TIMED_STEPS
        limit = max(self.spec.min_seconds, self.spec.factor * statistics.median(self._times)) if warm else None
        self._step, self._began, self._limit = step, time.monotonic(), limit or self.spec.startup_seconds
        if self._stall == step:
            while True:
                time.sleep(3600)

    def finished(self) -> None:
        """The step ended: time it; what follows (logging, evaluation, a save) has the start-up limit."""
        self._times.append(time.monotonic() - self._began)
        self._began, self._limit = time.monotonic(), self.spec.startup_seconds

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(POLL):
            elapsed = time.monotonic() - self._began
            if elapsed > self._limit:
                self._fire(self._message(elapsed), first=True)
            elif self._flag.exists() and self._flag.stat().st_mtime > self._since:
                self._fire(self._flag.read_text().strip(), first=False)

    def _message(self, elapsed: float) -> str:
        why = (f"{self.spec.factor:g}x the median step {statistics.median(self._times):.2f} s, at least "
               f"{self.spec.min_seconds:g} s" if len(self._times) >= TIMED_STEPS and self._step
               else f"startup_seconds {self.spec.startup_seconds:g}")
        return (f"hang: step {self._step} ran {elapsed:.0f} s on rank {self.rank} (limit {self._limit:.0f} s: "
                f"resources.hang_timeout {why}); Python stacks in {self.run.logs}/hang-step-{self._step}-rank-*.txt")

    def _fire(self, message: str, first: bool) -> None:
        stacks = self.run.logs / f"hang-step-{self._step}-rank-{self.rank}.txt"
        with open(stacks, "w") as handle:
            handle.write(f"{message}\nrank {self.rank} at {time.strftime('%F %T')}:\n")
            handle.flush()
            faulthandler.dump_traceback(handle, all_threads=True)
        self.log(message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        if first:
            from launcher.train.__main__ import record_first_failure

            record_first_failure(self.run, Result("failed", step=self._step, error=message, exit_code=HANG_EXIT_CODE))
            tmp = self._flag.with_name(f".HANG.{os.getpid()}.tmp")
            tmp.write_text(message + "\n")
            os.replace(tmp, self._flag)
            time.sleep(GRACE)
        os._exit(HANG_EXIT_CODE)


def _injected_stall(rank: int) -> int | None:
    value = os.environ.get(STALL_AT_STEP)
    if not value:
        return None
    step, _, on_rank = value.partition(":")
    return int(step) if int(on_rank or 0) == rank else None
