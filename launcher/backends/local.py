"""local, torchrun and deepspeed: the plan's launch command runs on this machine, and llaunch waits for it.

The worker processes inherit the terminal so rank 0 can draw progress.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from launcher.backends.base import Backend
from launcher.plan.launch_plan import LaunchPlan
from launcher.rundir import RunDir


class LocalBackend(Backend):
    def launch(self, run: RunDir, plan: LaunchPlan) -> int:
        run.stop_file.unlink(missing_ok=True)
        run.result_file.unlink(missing_ok=True)  # a result from an earlier start must not stand for this one
        print(f"run dir: {run.path}")
        if plan.nodes > 1 and plan.launcher == "torchrun":
            print(f"this is one of {plan.nodes} nodes: start the same on each other node with "
                  f"`llaunch resume {run.path}` (or bash {run.launch_script})")
        print(f"$ {plan.commands[0].shell()}", flush=True)
        return execute(plan)


def execute(plan: LaunchPlan) -> int:
    """Start the plan's command, wait for it, and return its exit code.

    The workers run in their own session, so a signal to llaunch reaches them only through here:
    Ctrl-C is forwarded as SIGINT, and SIGTERM/SIGHUP (a process manager stopping llaunch, a closed
    terminal) as SIGTERM; either way the workers checkpoint at the next step boundary and exit, and
    llaunch waits for them instead of leaving them orphaned.
    """
    env = {**os.environ, **plan.env}
    proc = subprocess.Popen(plan.commands[0].argv, env=env, start_new_session=True)

    def forward(signum: int, _frame=None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            forward(signal.SIGINT)
